"""Java and JavaScript literals in BFCL, both ways.

BFCL's Java and JavaScript entries hold argument values as strings of Java/JS source
(`new ArrayList<>(Arrays.asList("a"))`, `[1, 2]`, `10n`). The checker reads them as Python values
by the doc's declared type (`java_to_python`, `js_to_python`: ports of the official type
converters, regex quirks included); the decoder writes the ground truth's Python values back as
such literals for the calls a perfect model would make (`java_literal`, `js_literal`). Both
directions live here so that what one writes, the other reads.
"""

from __future__ import annotations

import re
from typing import Any

JAVA_TYPES: dict[str, type] = {
    "byte": int,
    "short": int,
    "integer": int,
    "float": float,
    "double": float,
    "long": int,
    "boolean": bool,
    "char": str,
    "Array": list,
    "ArrayList": list,
    "Set": set,
    "HashMap": dict,
    "Hashtable": dict,
    "Queue": list,
    "Stack": list,
    "String": str,
    "any": str,
}
JS_TYPES: dict[str, type] = {
    "String": str,
    "integer": int,
    "float": float,
    "Bigint": int,
    "Boolean": bool,
    "dict": dict,
    "array": list,
    "any": str,
}


# ---------------------------------------------------------------------------------------------
# Java and JavaScript literals -> Python values (ports of the official type converters)

# A literal that does not parse as the declared type comes back unchanged as a string, so it
# then fails the type check (or passes as a "variable" when the answer is a variable name).

_INT = re.compile(r"^-?\d+$")
_JAVA_FLOAT = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]$")
_JAVA_DOUBLE = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")
_JAVA_LONG = re.compile(r"^-?\d+[lL]$")
_JAVA_CHAR = re.compile(r"^\'.$\'")  # as in the official converter; it can never match
_JAVA_EMPTY_LIST = re.compile(r"new\s+ArrayList<\w*>\(\)")
# The official converter reads collections with these patterns (Python's `re`, searched):
#   ArrayList    new\s+ArrayList<\w*>\(Arrays\.asList\((.+?)\)\)
#   add block    new\s+ArrayList<\w*>\(\)\s*\{\{\s*(.+?)\s*\}\}  (DOTALL), then add\((.+?)\) (findall)
#   array        new\s+\w+\[\]\s*\{(.*?)\}
#   HashMap      new\s+HashMap<.*?>\s*\(\)\s*\{\s*\{?\s*(.*?)\s*\}?\s*\}  (DOTALL), then
#                put\(\"(.*?)\",\s*(.*?)\)  (findall); empty: new\s+HashMap<.*?>\s*\(\)
# Each lazy group scans to the end of the line (or text) from every start that fails, so an
# answer repeating a start without its end took minutes. Below, only the fixed prefixes are
# regexes; where each lazy group ends is looked up in tables built in one pass (as for the
# JavaScript patterns), so the matches are the same and the time is linear (tests compare).
_JAVA_AS_LIST_START = re.compile(r"new\s+ArrayList<\w*>\(Arrays\.asList\(")
_JAVA_ADD_BLOCK_START = re.compile(r"new\s+ArrayList<\w*>\(\)\s*\{\{")
_JAVA_ARRAY_START = re.compile(r"new\s+\w+\[\]\s*\{")
_JAVA_MAP_START = re.compile(r"new\s+HashMap<")


def java_to_python(value: str, type_name: str, item_type: str | None = None) -> Any:
    """A Java literal as the Python value BFCL compares, by the declared Java type:
    "10L" (long) -> 10, "3.5f" (float) -> 3.5, "true" (boolean) -> True,
    'new ArrayList<>(Arrays.asList("a", "b"))' (ArrayList of String) -> ["a", "b"],
    'new HashMap<String, Object>() {{ put("k", 1); }}' -> {"k": 1}."""
    if type_name not in JAVA_TYPES:
        raise ValueError(f"unsupported Java type {type_name!r}")
    if type_name in ("byte", "short", "integer"):
        return int(value) if _INT.match(value) else str(value)
    if type_name == "float":
        return float(re.sub(r"[fF]$", "", value)) if _JAVA_FLOAT.match(value) else str(value)
    if type_name == "double":
        return float(value) if _JAVA_DOUBLE.match(value) else str(value)
    if type_name == "long":
        return int(re.sub(r"[lL]$", "", value)) if _JAVA_LONG.match(value) else str(value)
    if type_name == "boolean":
        return value == "true" if value in ("true", "false") else str(value)
    if type_name == "char":
        return value if _JAVA_CHAR.match(value) else str(value)
    if type_name == "ArrayList":
        return _java_arraylist(value, item_type)
    if type_name == "Array":
        return _java_array(value, item_type)
    if type_name == "HashMap":
        return _java_hashmap(value)
    if type_name in ("String", "any"):
        return str(value)
    raise ValueError(f"conversion of Java type {type_name!r} is not implemented (nor is it officially)")


def _java_element(text: str, item_type: str | None) -> Any:
    if item_type in ("char", "String"):
        return text[1:-1]  # drop the quotes
    return java_to_python(text, item_type) if item_type else _java_value(text)


def _java_arraylist(text: str, item_type: str | None) -> Any:
    if (items := _java_as_list(text)) is not None:
        return [_java_element(part.strip(), item_type) for part in items.split(",")]
    if (block := _java_add_block(text)) is not None:
        return [_java_element(part.strip(), item_type) for part in _java_adds(block)]
    if _JAVA_EMPTY_LIST.search(text):
        return []
    return text


def _java_array(text: str, item_type: str | None) -> Any:
    body = _java_array_body(text)
    if body is None:
        return text
    parts = [part.strip() for part in body.split(",") if part.strip()]
    # Unlike ArrayList elements, array elements keep their quotes (official behaviour).
    return [java_to_python(part, item_type) if item_type else _java_value(part) for part in parts]


def _java_hashmap(text: str) -> Any:
    if (body := _java_map_body(text)) is not None:
        return {key: _java_value(raw.strip()) for key, raw in _java_puts(body)} if body.strip() else {}
    if _java_empty_map(text):
        return {}
    return text


def _java_as_list(text: str) -> str | None:
    """The group of the official ArrayList pattern's search: `.+?` up to the first `))`, on
    one line."""
    n = len(text)
    pair = [n] * (n + 1)  # pair[i]: first j >= i with text[j:j+2] == "))", no newline in text[i:j]
    for i in range(n - 1, -1, -1):
        pair[i] = i if text.startswith("))", i) else n if text[i] == "\n" else pair[i + 1]
    for start in _JAVA_AS_LIST_START.finditer(text):
        g = start.end()
        if g < n and text[g] != "\n" and pair[g + 1] < n:
            return text[g : pair[g + 1]]
    return None


def _java_add_block(text: str) -> str | None:
    """The group of the official add-block pattern's search (DOTALL): after `{{` and spaces,
    `.+?` up to the first place where spaces and `}}` follow."""
    n = len(text)
    space = _space_end(text)
    closes = [n] * (n + 1)  # closes[i]: first e >= i where spaces then `}}` follow
    for i in range(n - 1, -1, -1):
        closes[i] = i if text.startswith("}}", space[i]) else closes[i + 1]
    for start in _JAVA_ADD_BLOCK_START.finditer(text):
        p = start.end()
        g = space[p]
        if g < n and closes[g + 1] < n:
            return text[g : closes[g + 1]]
        if g > p and text.startswith("}}", g):  # the regex gives one space back to the group
            return text[g - 1 : g]
    return None


def _java_adds(block: str) -> list[str]:
    """`re.findall(r"add\\((.+?)\\)", block)`, in one pass."""
    n = len(block)
    paren = _next_index(block, ")", "\n")
    out, cursor = [], 0
    while (at := block.find("add(", cursor)) >= 0:
        g = at + 4
        j = paren[g] if g < n else n
        if j == g < n:  # `.+?` takes at least one character, a `)` included
            j = paren[g + 1]
        if j < n:
            out.append(block[g:j])
            cursor = j + 1
        else:
            cursor = at + 1
    return out


def _java_array_body(text: str) -> str | None:
    """The group of the official array pattern's search: `.*?` up to the first `}`, on one line."""
    brace = _next_index(text, "}", "\n")
    for start in _JAVA_ARRAY_START.finditer(text):
        if (j := brace[start.end()]) < len(text):
            return text[start.end() : j]
    return None


def _java_map_body(text: str) -> str | None:
    """The group of the official HashMap pattern's search (DOTALL): `<.*?>` runs to the first
    `>` followed by `()` and `{`; the body, after spaces, an optional `{` and spaces, runs to the
    spaces before the first `}`."""
    n = len(text)
    space = _space_end(text)
    opening = [n] * (n + 1)  # opening[i]: first k >= i where `>`, spaces, `()`, spaces, `{` begin
    for i in range(n - 1, -1, -1):
        a = space[i + 1] if text[i] == ">" else n
        ok = text.startswith("()", a) and space[a + 2] < n and text[space[a + 2]] == "{"
        opening[i] = i if ok else opening[i + 1]
    for start in _JAVA_MAP_START.finditer(text):
        k = opening[start.end()]
        if k >= n:
            return None  # no later start can find one either
        g = space[space[space[k + 1] + 2] + 1]  # past `>` spaces `()` spaces `{` spaces
        if g < n and text[g] == "{":
            g = space[g + 1]
        close = text.find("}", g)
        if close < 0:
            return None
        end = close
        while end > g and text[end - 1].isspace():
            end -= 1
        return text[g:end]
    return None


def _java_puts(body: str) -> list[tuple[str, str]]:
    """`re.findall(r'put\\("(.*?)",\\s*(.*?)\\)', body)`, in one pass: a key runs to the first
    `",` on its line whose value (after spaces) reaches a `)` on its own line."""
    n = len(body)
    space, paren = _space_end(body), _next_index(body, ")", "\n")
    key_end = [n] * (n + 1)  # key_end[i]: first such `",` at >= i, with no newline in between
    for i in range(n - 1, -1, -1):
        ok = body.startswith('",', i) and paren[space[i + 2]] < n
        key_end[i] = i if ok else n if body[i] == "\n" else key_end[i + 1]
    out, cursor = [], 0
    while (at := body.find('put("', cursor)) >= 0:
        q = key_end[at + 5]
        if q < n:
            value = space[q + 2]
            out.append((body[at + 5 : q], body[value : paren[value]]))
            cursor = paren[value] + 1
        else:
            cursor = at + 1
    return out


def _java_empty_map(text: str) -> bool:
    """Whether the official empty-HashMap pattern is found: `<.*?>` (on one line) then `()`."""
    n = len(text)
    space = _space_end(text)
    gt = [n] * (n + 1)  # gt[i]: first k >= i with `>` spaces `()`, no newline in text[i:k]
    for i in range(n - 1, -1, -1):
        ok = text[i] == ">" and text.startswith("()", space[i + 1])
        gt[i] = i if ok else n if text[i] == "\n" else gt[i + 1]
    return any(gt[start.end()] < n for start in _JAVA_MAP_START.finditer(text))


def _java_value(text: str) -> Any:
    """An untyped Java literal: boolean, "string", long, float, then int/float, else text."""
    if text == "true":
        return True
    if text == "false":
        return False
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    if _JAVA_LONG.match(text):
        return int(text[:-1])
    if _JAVA_FLOAT.match(text):
        return float(re.sub(r"[fF]$", "", text))
    return _number_or_text(text)


def _number_or_text(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


_JS_FLOAT = re.compile(r"^-?\d+(\.\d+)?$")
_JS_BIGINT = re.compile(r"^-?\d+n$")
_JS_ARRAY = re.compile(r"\[(.*?)\]|\bnew\s+Array\((.*?)\)")
_JS_NEW_ARRAY_2D = re.compile(r"new\s+Array\(\s*\[")
_JS_OBJECT = re.compile(r"\{(.*?)\}")
# The official converter reads 2-D arrays and object pairs with these patterns:
#   2-D array   \[\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\]|\bnew\s+Array\(\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\)
#   inner rows  \[(.*?)\]  (findall)
#   pairs       ([^:]+):\s*(.*?)(?:,\s*(?=[^,]+:)|$)  (findall)
# Python's backtracking makes the first exponential and the others quadratic in the answer's
# length (a 190 KB answer took 90 s). `_js_2d_end`, `_js_rows` and `_js_pairs` compute the same
# matches by scanning: linear time (tests compare them with the patterns on random text).
def js_to_python(value: str, type_name: str, item_type: str | None = None) -> Any:
    """A JavaScript literal as the Python value BFCL compares, by the declared type:
    "'abc'" (String) -> "abc", "12n" (Bigint) -> 12, "[1, 2]" (array) -> [1, 2],
    "{key: 'v'}" (dict) -> {"key": "v"}."""
    if type_name not in JS_TYPES:
        raise ValueError(f"unsupported JavaScript type {type_name!r}")
    if type_name == "String":
        quoted = (value.startswith('"') and value.endswith('"')) or (value.startswith("'") and value.endswith("'"))
        return value[1:-1] if quoted else str(value)
    if type_name == "integer":
        return int(value) if _INT.match(value) else str(value)
    if type_name == "float":
        return float(value) if _JS_FLOAT.match(value) else str(value)
    if type_name == "Bigint":
        return int(value[:-1]) if _JS_BIGINT.match(value) else str(value)
    if type_name == "Boolean":
        return value == "true" if value in ("true", "false") else str(value)
    if type_name == "dict":
        return _js_object(value.strip())
    if type_name == "array":
        try:
            return _js_array(value.strip(), item_type)
        except Exception:  # the official converter falls back to the text on any error
            return value.strip()
    return str(value)  # any


def _js_array(code: str, item_type: str | None) -> Any:
    if (end := _js_2d_end(code)) is not None:
        rows = []
        for index, inner in enumerate(_js_rows(code, end)):
            inner = inner.strip()
            if index == 0 and inner.startswith("["):
                inner = inner[1:]
            rows.append([_js_value(part.strip()) for part in inner.split(",")])
        return rows
    match = _JS_ARRAY.match(code)
    if not match:
        return code
    body = match.group(1) if match.group(1) is not None else match.group(2)
    body = (body or "").strip()
    parts = body.split(",") if body else []
    if not item_type:
        return [_js_value(part.strip()) for part in parts]
    out = []
    for part in map(str.strip, parts):
        # Officially a quoted element is converted with "String" as its own item type, which
        # only matters for arrays of arrays.
        quoted = part.startswith(("'", '"'))
        out.append(js_to_python(part, item_type, "String" if quoted else None))
    return out


def _js_object(code: str) -> Any:
    if code == "{}":
        return {}
    match = _JS_OBJECT.match(code)
    if not match:
        return code
    try:
        out: dict[str, Any] = {}
        for key, raw in _js_pairs(match.group(1)):
            key, raw = key.strip().strip("'\""), raw.strip()
            if raw.startswith("[") and raw.endswith("]"):
                out[key] = js_to_python(raw, "array")
            elif raw.startswith("{") and raw.endswith("}"):
                out[key] = _js_object(raw)
            else:
                out[key] = _js_value(raw.strip("'\""))
        return out
    except Exception:
        return code


def _next_index(text: str, wanted: str, stop: str = "") -> list[int]:
    """For every position i, the first j >= i with text[j] == wanted and no `stop` character in
    text[i:j]; len(text) when there is none. (One pass from the right.)"""
    n = len(text)
    out = [n] * (n + 1)
    for i in range(n - 1, -1, -1):
        char = text[i]
        out[i] = i if char == wanted else n if stop and char in stop else out[i + 1]
    return out


def _space_end(text: str) -> list[int]:
    """For every position i, the first j >= i where text[j] is not whitespace (regex \\s)."""
    n = len(text)
    out = [n] * (n + 1)
    for i in range(n - 1, -1, -1):
        out[i] = out[i + 1] if text[i].isspace() else i
    return out


def _js_2d_end(code: str) -> int | None:
    """Where the official 2-D array pattern's match of `code` ends (None: no match).

    Rows are `[` ... the first `]` on the line that lets the rest match ... `]`, separated by
    commas, and closed by `]` (or `)` after `new Array(`); `.*?` crosses no newline. Trying the
    `]`s of a row from the left, as the regex does, is a right-to-left table over `]` positions.
    """
    n = len(code)
    space = _space_end(code)
    if code.startswith("["):
        closer, first = "]", space[1]
        if first >= n or code[first] != "[":
            return None
        start = first + 1
    elif match := _JS_NEW_ARRAY_2D.match(code):
        closer, start = ")", match.end()
    else:
        return None
    bracket = _next_index(code, "]", "\n")  # a row's first `]` before the line ends
    # ends[j], for a `]` at j: where the match ends when the current row tries closing at j (then
    # at its later `]`s); None when none of them leads to a match.
    ends: list[int | None] = [None] * (n + 1)

    def row_from(i: int) -> int | None:  # a row whose text starts at i
        return ends[bracket[i]] if i <= n and bracket[i] < n else None

    for j in range(n - 1, start - 1, -1):
        if code[j] != "]":
            continue
        k = space[j + 1]
        end = None
        if k < n and code[k] == closer:
            end = k + 1
        elif k < n and code[k] == ",":
            m = space[k + 1]
            if m < n and code[m] == "[":
                end = row_from(m + 1)
        ends[j] = end if end is not None else row_from(j + 1)
    return row_from(start)


def _js_rows(code: str, end: int) -> list[str]:
    """`re.findall(r"\\[(.*?)\\]", code[:end])`, in one pass."""
    text = code[:end]
    bracket = _next_index(text, "]", "\n")
    rows, cursor = [], 0
    while (opening := text.find("[", cursor)) >= 0:
        close = bracket[opening + 1]
        if close < len(text):
            rows.append(text[opening + 1 : close])
            cursor = close + 1
        else:
            cursor = opening + 1
    return rows


def _js_pairs(body: str) -> list[tuple[str, str]]:
    """`re.findall(r"([^:]+):\\s*(.*?)(?:,\\s*(?=[^,]+:)|$)", body)` for a body without newlines,
    in one pass: a key runs to the next colon; its value to the first comma followed (after
    spaces) by more text and a colon before any other comma, else to the end."""
    n = len(body)
    colon, comma, space = _next_index(body, ":"), _next_index(body, ","), _space_end(body)

    def key_follows(x: int) -> bool:  # (?=[^,]+:) at x
        return x < n and colon[x + 1] < comma[x]

    pairs, c = [], 0
    while c < n:
        if body[c] == ":":  # [^:]+ needs a character before the colon
            c += 1
            continue
        q = colon[c]
        if q >= n:
            break  # no colon left: no key can match from here on
        value_start = space[q + 1]
        t, resume = comma[value_start], n
        while t < n:
            u = space[t + 1]
            if key_follows(u):
                resume = u
                break
            if u > t + 1 and colon[u] < comma[u]:  # the regex gives back one space to the key
                resume = u - 1
                break
            t = comma[t + 1]
        pairs.append((body[c:q], body[value_start:t]))
        c = resume
    return pairs


def _js_value(text: str) -> Any:
    """An untyped JavaScript literal: boolean, quoted string, then int/float, else text."""
    text = text.strip()
    if text == "true":
        return True
    if text == "false":
        return False
    if len(text) >= 1 and ((text[0] == text[-1] == '"') or (text[0] == text[-1] == "'")):
        return text[1:-1]
    return _number_or_text(text)


# ---------------------------------------------------------------------------------------------
# Python values -> Java and JavaScript literals


def java_literal(value: Any, spec: dict) -> str:
    """A value as the Java literal of the doc type `spec` (as BFCL's answers write them)."""
    type_name = spec.get("type")
    if isinstance(value, str):
        return value  # strings, and variable names standing for objects
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}L" if type_name == "long" else f"{value}f" if type_name == "float" else str(value)
    if isinstance(value, float):
        return f"{value!r}f" if type_name == "float" else repr(value)
    item_spec = spec.get("items", {})
    if isinstance(value, list) and type_name == "ArrayList":
        if not value:
            return "new ArrayList<>()"
        quoted = item_spec.get("type") in ("String", "char")
        items = [f'"{v}"' if quoted else java_literal(v, item_spec) for v in value]
        return f"new ArrayList<>(Arrays.asList({', '.join(items)}))"
    if isinstance(value, list):
        # Array elements keep their quotes when converted, so strings are written bare.
        items = [java_literal(v, item_spec) for v in value]
        return f"new {_JAVA_ELEMENT.get(item_spec.get('type'), 'Object')}[]{{{', '.join(items)}}}"
    if isinstance(value, dict):
        puts = " ".join(f'put("{k}", {_java_untyped(v)});' for k, v in value.items())
        return f"new HashMap<String, Object>() {{{{ {puts} }}}}"
    return str(value)


_JAVA_ELEMENT = {
    "String": "String",
    "integer": "int",
    "long": "long",
    "double": "double",
    "boolean": "boolean",
    "char": "char",
}


def _java_untyped(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def js_literal(value: Any, spec: dict) -> str:
    """A value as the JavaScript literal of the doc type `spec` (as BFCL's answers write them)."""
    type_name = spec.get("type")
    if isinstance(value, str):
        return f'"{value}"' if type_name == "String" else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}n" if type_name == "Bigint" else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        item_spec = spec.get("items", {"type": "String"})
        return "[" + ", ".join(js_literal(v, item_spec) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_js_untyped(v)}" for k, v in value.items()) + "}"
    return str(value)


def _js_untyped(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_js_untyped(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_js_untyped(v)}" for k, v in value.items()) + "}"
    return repr(value)
