/* Optional C versions of aiomsg's hottest code: one decode loop for every
 * framing (Scanner), the LengthPrefixed encoders, the buffer that collects
 * long message bodies (BodyBuffer), and `async for` over a connection
 * (ReadyIterator: the Streams front's, and the anyio front's).
 *
 * Why this file exists: in pure Python a 100-byte message costs 0.4-1 us to
 * decode, several times what the application's own callback costs. Here the
 * loop costs one bytes allocation per message.
 *
 * The scanner does only the common case, runs of whole well-formed messages,
 * and hands everything unusual back to Python (aiomsg/framing), which owns the
 * rules, the error messages, the partial-header and partial-body state: so the
 * two paths cannot disagree on anything but speed (tests/test_differential.py
 * checks it). When this module is missing (no C compiler at install time, PyPy,
 * AIOMSG_PURE_PYTHON=1), the pure-Python loops run instead.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static int
check_width(long width)
{
    if (width == 1 || width == 2 || width == 4 || width == 8) {
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "width must be 1, 2, 4 or 8, not %ld", width);
    return -1;
}

static unsigned long long
read_length(const unsigned char *p, long width, int little)
{
    unsigned long long value = 0;
    long i;
    if (little) {
        for (i = width - 1; i >= 0; i--) {
            value = (value << 8) | p[i];
        }
    }
    else {
        for (i = 0; i < width; i++) {
            value = (value << 8) | p[i];
        }
    }
    return value;
}

static void
write_length(unsigned char *p, unsigned long long value, long width, int little)
{
    long i;
    for (i = 0; i < width; i++) {
        unsigned char byte = (unsigned char)(value >> (8 * i));
        if (little) {
            p[i] = byte;
        }
        else {
            p[width - 1 - i] = byte;
        }
    }
}

/* The four integer arguments every function takes after its buffer(s). */
static int
parse_options(PyObject *const *args, long *width, int *little, Py_ssize_t *max_size)
{
    *width = PyLong_AsLong(args[0]);
    if (*width == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (check_width(*width) < 0) {
        return -1;
    }
    *little = PyObject_IsTrue(args[1]);
    if (*little < 0) {
        return -1;
    }
    *max_size = PyLong_AsSsize_t(args[2]);
    if (*max_size == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (*max_size < 0) {
        PyErr_SetString(PyExc_ValueError, "max_size must not be negative");
        return -1;
    }
    return 0;
}

/* --- Scanner: one decode loop for every framing, driven by a small table ---
 *
 * A Scanner is built once per framing (framings are immutable) from what its
 * wire format is: a header kind and its parameters, or a delimiter. scan()
 * appends every whole, well-formed message of data[pos:] to a list, reading the
 * caller's buffer in place, and stops at the first thing that is not: a header
 * or body that runs past the end, a malformed header, a length over max_size,
 * a missing trailer. It never raises for the data: it returns where it stopped,
 * and the Python decoder takes over there with its one implementation of each
 * rule (the framing's _header_at, the delimiter logic), which decides between
 * "wait for more bytes" and which error, with which text.
 *
 * Every length is compared with max_size (a Py_ssize_t) before it is used, and
 * digits and varint groups are accumulated with an overflow guard, so no value
 * read from the wire can wrap around.
 */

enum {
    K_BINARY = 1,     /* a = width (1, 2, 4, 8); flag = little-endian */
    K_ASCII = 2,      /* a = number of digits (1..20) */
    K_NETSTRING = 3,  /* a = most digits a length may have; trailer ',' */
    K_VARINT = 4,     /* unsigned LEB128, at most 10 bytes */
    K_FIXED = 5,      /* a = size of every message (>= 1), no header */
    K_TYPED = 6,      /* a type byte, then a fixed size or a nested header kind */
    K_DELIMITED = 7,  /* delimiter; flag = strip a '\r' before it (Lines) */
    K_FIELD = 8,      /* LengthField: a = width (0: varint); flag = little-endian;
                         delimiter = trailer; the rest in the layout fields below */
};

#define VARINT_MAX_BYTES 10
#define ENTRY_UNKNOWN 0
#define ENTRY_FIXED 1
#define ENTRY_NESTED 2

typedef struct Scanner Scanner;

struct Scanner {
    PyObject_HEAD
    int kind;
    int flag;
    Py_ssize_t a;
    Py_ssize_t max_size;
    PyObject *delimiter;              /* bytes: K_DELIMITED's delimiter, K_FIELD's trailer */
    Py_ssize_t offset;                /* K_FIELD: bytes before the length field */
    Py_ssize_t adjust;                /* K_FIELD: added to the field's value */
    Py_ssize_t strip;                 /* K_FIELD: bytes cut off the front; -1: the header */
    Py_ssize_t keep;                  /* K_FIELD: prefix bytes kept before the body */
    Py_ssize_t varint_bytes;          /* K_FIELD, varint field: the most bytes it may have */
    unsigned char *entry_kind;        /* K_TYPED only: 256 entries */
    Py_ssize_t *entry_size;           /* K_TYPED only */
    Scanner **nested;                 /* K_TYPED only: strong references or NULL */
};

/* Parse a header kind's header at p[pos:end]. Return 1 with *start (where the
   body begins) and *size (<= s->max_size) for a whole well-formed header;
   0 for anything else, which Python judges. */
static int
parse_header(const Scanner *s, const unsigned char *p, Py_ssize_t pos, Py_ssize_t end,
             Py_ssize_t *start, Py_ssize_t *size)
{
    const unsigned long long limit = (unsigned long long)s->max_size;
    unsigned long long value = 0;
    Py_ssize_t i;

    switch (s->kind) {
    case K_BINARY:
        if (end - pos < s->a) {
            return 0;
        }
        value = read_length(p + pos, (long)s->a, s->flag);
        if (value > limit) {
            return 0;
        }
        *start = pos + s->a;
        *size = (Py_ssize_t)value;
        return 1;

    case K_ASCII:
        if (end - pos < s->a) {
            return 0;
        }
        for (i = pos; i < pos + s->a; i++) {
            unsigned int digit = (unsigned int)p[i] - '0';
            if (digit > 9 || digit > limit || value > (limit - digit) / 10) {
                return 0;  /* not a digit, or over max_size (never wrapped) */
            }
            value = value * 10 + digit;
        }
        *start = pos + s->a;
        *size = (Py_ssize_t)value;
        return 1;

    case K_NETSTRING:
        if (pos >= end) {
            return 0;
        }
        if (p[pos] == '0') {  /* only "0:" may start with 0 */
            if (end - pos < 2 || p[pos + 1] != ':') {
                return 0;
            }
            *start = pos + 2;
            *size = 0;
            return 1;
        }
        for (i = pos; i < end && i - pos < s->a; i++) {
            unsigned int digit = (unsigned int)p[i] - '0';
            if (digit > 9) {
                break;
            }
            if (digit > limit || value > (limit - digit) / 10) {
                return 0;
            }
            value = value * 10 + digit;
        }
        if (i == pos || i >= end || p[i] != ':') {
            return 0;  /* no digits, too many, another byte, or the ':' is still to come */
        }
        *start = i + 1;
        *size = (Py_ssize_t)value;
        return 1;

    case K_VARINT:
        for (i = pos; i < end && i - pos < VARINT_MAX_BYTES; i++) {
            unsigned int shift = (unsigned int)(7 * (i - pos));
            unsigned long long group = p[i] & 0x7F;
            /* group << shift > limit, computed without shifting bits out */
            if (group && (shift >= 63 || group > (limit >> shift))) {
                return 0;
            }
            value |= group << shift;
            if (value > limit) {
                return 0;
            }
            if (p[i] < 0x80) {
                *start = i + 1;
                *size = (Py_ssize_t)value;
                return 1;
            }
        }
        return 0;  /* incomplete, or longer than 10 bytes */

    case K_FIXED:
        *start = pos;
        *size = s->a;
        return 1;

    case K_FIELD: {
        /* Python's LengthField._header_at is the rule; this takes only headers
           it accepts, and every sum stays far from overflow: the value is
           capped below, offset/strip/keep are < 2**30 and |adjust| < 2**40
           (LengthField sends larger ones to Python alone). */
        const Py_ssize_t at = pos + s->offset;
        Py_ssize_t header_end, skip, frame;
        long long following;
        if (end - pos < s->offset) {
            return 0;
        }
        if (s->a) {
            if (end - at < s->a) {
                return 0;
            }
            value = read_length(p + at, (long)s->a, s->flag);
            header_end = at + s->a;
        }
        else {
            for (i = at; ; i++) {
                unsigned int shift = (unsigned int)(7 * (i - at));
                unsigned long long group;
                if (i >= end || i - at >= s->varint_bytes) {
                    return 0;  /* incomplete, or too long */
                }
                group = p[i] & 0x7F;
                if (group && (shift >= 56 || group > ((1ULL << 56) >> shift))) {
                    return 0;  /* past 2**56: far over any max_size C takes */
                }
                value |= group << shift;
                if (p[i] < 0x80) {
                    header_end = i + 1;
                    break;
                }
            }
        }
        if (value > (1ULL << 60)) {
            return 0;
        }
        following = (long long)value + (long long)s->adjust;
        if (following < 0) {
            return 0;
        }
        frame = header_end - pos + (Py_ssize_t)following;
        skip = s->strip < 0 ? header_end - pos : s->strip;
        if (skip > frame || frame - skip + s->keep > s->max_size) {
            return 0;
        }
        *start = pos + skip;
        *size = frame - skip;
        return 1;
    }
    }
    return 0;
}

/* The bytes that must follow every body: the netstring's ',', K_FIELD's trailer. */
static Py_ssize_t
trailer_of(const Scanner *s, const unsigned char **trailer)
{
    if (s->kind == K_NETSTRING) {
        *trailer = (const unsigned char *)",";
        return 1;
    }
    if (s->kind == K_FIELD) {
        *trailer = (const unsigned char *)PyBytes_AS_STRING(s->delimiter);
        return PyBytes_GET_SIZE(s->delimiter);
    }
    *trailer = NULL;
    return 0;
}

static int
emit(PyObject *out, const unsigned char *p, Py_ssize_t size)
{
    PyObject *message = PyBytes_FromStringAndSize((const char *)p, size);
    int result;
    if (message == NULL) {
        return -1;
    }
    result = PyList_Append(out, message);
    Py_DECREF(message);
    return result;
}

/* The message p[pos:pos+keep] + p[start:start+size], in one new bytes object. */
static int
emit_kept(PyObject *out, const unsigned char *p, Py_ssize_t pos, Py_ssize_t keep,
          Py_ssize_t start, Py_ssize_t size)
{
    PyObject *message = PyBytes_FromStringAndSize(NULL, keep + size);
    int result;
    char *q;
    if (message == NULL) {
        return -1;
    }
    q = PyBytes_AS_STRING(message);
    memcpy(q, p + pos, (size_t)keep);
    memcpy(q + keep, p + start, (size_t)size);
    result = PyList_Append(out, message);
    Py_DECREF(message);
    return result;
}

/* Header kinds: header, body, and the trailer (a netstring's ',', a LengthField's). */
static Py_ssize_t
scan_counted(const Scanner *s, const unsigned char *p, Py_ssize_t pos, Py_ssize_t end,
             PyObject *out)
{
    const unsigned char *trailer;
    const Py_ssize_t tl = trailer_of(s, &trailer);
    const Py_ssize_t keep = s->kind == K_FIELD ? s->keep : 0;
    Py_ssize_t start, size;
    while (pos < end && parse_header(s, p, pos, end, &start, &size)) {
        if (start > end || size > end - start - tl) {
            break;  /* the body (or its trailer) is still to come */
        }
        if (tl && memcmp(p + start + size, trailer, (size_t)tl) != 0) {
            break;
        }
        if ((keep ? emit_kept(out, p, pos, keep, start, size) : emit(out, p + start, size)) < 0) {
            return -1;
        }
        pos = start + size + tl;
    }
    return pos;
}

/* TypePrefixed: the message is the type byte followed by the body. */
static Py_ssize_t
scan_typed(const Scanner *s, const unsigned char *p, Py_ssize_t pos, Py_ssize_t end,
           PyObject *out)
{
    Py_ssize_t start, size, tl;
    const unsigned char *trailer;
    while (pos < end) {
        unsigned char type = p[pos];
        const Scanner *nested;
        PyObject *message;
        char *q;
        if (s->entry_kind[type] == ENTRY_FIXED) {
            size = s->entry_size[type];
            if (size > end - pos - 1) {
                break;
            }
            if (emit(out, p + pos, size + 1) < 0) {
                return -1;
            }
            pos += size + 1;
            continue;
        }
        if (s->entry_kind[type] != ENTRY_NESTED) {
            break;  /* an unknown type */
        }
        nested = s->nested[type];
        if (!parse_header(nested, p, pos + 1, end, &start, &size) || size > s->max_size) {
            break;
        }
        tl = trailer_of(nested, &trailer);
        if (start > end || size > end - start - tl
            || (tl && memcmp(p + start + size, trailer, (size_t)tl) != 0)) {
            break;
        }
        message = PyBytes_FromStringAndSize(NULL, size + 1);
        if (message == NULL) {
            return -1;
        }
        q = PyBytes_AS_STRING(message);
        q[0] = (char)type;
        memcpy(q + 1, p + start, (size_t)size);
        if (PyList_Append(out, message) < 0) {
            Py_DECREF(message);
            return -1;
        }
        Py_DECREF(message);
        pos = start + size + tl;
    }
    return pos;
}

/* Delimited and Lines: memchr for the delimiter's first byte, then compare the rest. */
static Py_ssize_t
scan_delimited(const Scanner *s, const unsigned char *p, Py_ssize_t pos, Py_ssize_t end,
               PyObject *out)
{
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(s->delimiter);
    const Py_ssize_t dl = PyBytes_GET_SIZE(s->delimiter);
    Py_ssize_t from = pos;  /* where the search goes on: never before what was searched */
    while (end - from >= dl) {
        const unsigned char *hit = memchr(p + from, d[0], (size_t)(end - from - dl + 1));
        Py_ssize_t idx, stop;
        if (hit == NULL) {
            break;
        }
        idx = hit - p;
        if (dl > 1 && memcmp(hit + 1, d + 1, (size_t)(dl - 1)) != 0) {
            from = idx + 1;
            continue;
        }
        stop = idx;
        if (s->flag && stop > pos && p[stop - 1] == '\r') {
            stop--;
        }
        if (stop - pos > s->max_size) {
            break;
        }
        if (emit(out, p + pos, stop - pos) < 0) {
            return -1;
        }
        pos = from = idx + dl;
    }
    return pos;
}

PyDoc_STRVAR(scanner_scan_doc,
"scan(data, pos, out, end=len(data)) -> int\n\n"
"Append to the list `out` every whole, well-formed message of data[pos:end], as\n"
"bytes, reading data (bytes, bytearray or a contiguous memoryview) in place.\n"
"Return where it stopped: end, or the start of the first message it does not\n"
"take (incomplete, malformed, over max_size), which Python then judges.");

static PyObject *
scanner_scan(Scanner *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos, end = -1;
    PyObject *out;

    if (nargs != 3 && nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "scan() takes 3 or 4 arguments");
        return NULL;
    }
    pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    /* end: scan data[:end] (a read's bytes at the start of a larger buffer), no slice made */
    if (nargs == 4) {
        end = PyLong_AsSsize_t(args[3]);
        if (end == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    out = args[2];
    if (!PyList_Check(out)) {
        PyErr_SetString(PyExc_TypeError, "out must be a list");
        return NULL;
    }
    /* PyBUF_SIMPLE: one contiguous block of bytes, or a BufferError. */
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (end < 0) {
        end = view.len;
    }
    if (end > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "end is past the data");
        return NULL;
    }
    if (pos < 0 || pos > end) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "pos is outside the data");
        return NULL;
    }
    switch (self->kind) {
    case K_TYPED:
        pos = scan_typed(self, view.buf, pos, end, out);
        break;
    case K_DELIMITED:
        pos = scan_delimited(self, view.buf, pos, end, out);
        break;
    default:
        pos = scan_counted(self, view.buf, pos, end, out);
    }
    PyBuffer_Release(&view);
    return pos < 0 ? NULL : PyLong_FromSsize_t(pos);
}

static void
scanner_free_table(Scanner *self)
{
    int t;
    if (self->nested != NULL) {
        for (t = 0; t < 256; t++) {
            Py_XDECREF((PyObject *)self->nested[t]);
        }
    }
    PyMem_Free(self->nested);
    PyMem_Free(self->entry_size);
    PyMem_Free(self->entry_kind);
    self->nested = NULL;
    self->entry_size = NULL;
    self->entry_kind = NULL;
}

/* K_TYPED: table is a tuple of 256 items, each None, an int or a header Scanner. */
static int
scanner_set_table(Scanner *self, PyTypeObject *type, PyObject *table)
{
    int t;
    if (!PyTuple_Check(table) || PyTuple_GET_SIZE(table) != 256) {
        PyErr_SetString(PyExc_TypeError, "table must be a tuple of 256 items");
        return -1;
    }
    self->entry_kind = PyMem_Calloc(256, sizeof(unsigned char));
    self->entry_size = PyMem_Calloc(256, sizeof(Py_ssize_t));
    self->nested = PyMem_Calloc(256, sizeof(Scanner *));
    if (self->entry_kind == NULL || self->entry_size == NULL || self->nested == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (t = 0; t < 256; t++) {
        PyObject *item = PyTuple_GET_ITEM(table, t);
        if (item == Py_None) {
            continue;
        }
        if (PyLong_Check(item)) {
            Py_ssize_t size = PyLong_AsSsize_t(item);
            if (size == -1 && PyErr_Occurred()) {
                return -1;
            }
            if (size < 0 || size > self->max_size) {
                PyErr_Format(PyExc_ValueError, "fixed size of type %d is not in 0..max_size", t);
                return -1;
            }
            self->entry_kind[t] = ENTRY_FIXED;
            self->entry_size[t] = size;
        }
        else if (Py_IS_TYPE(item, type)
                 && ((((Scanner *)item)->kind >= K_BINARY && ((Scanner *)item)->kind <= K_FIXED)
                     || (((Scanner *)item)->kind == K_FIELD && ((Scanner *)item)->keep == 0))) {
            self->entry_kind[t] = ENTRY_NESTED;
            self->nested[t] = (Scanner *)Py_NewRef(item);
        }
        else {
            PyErr_Format(PyExc_TypeError, "type %d: expected None, an int or a header Scanner", t);
            return -1;
        }
    }
    return 0;
}

static PyObject *
scanner_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"kind", "max_size", "a", "flag", "delimiter", "table", "layout",
                               NULL};
    int kind, flag = 0;
    Py_ssize_t max_size, a = 0;
    Py_ssize_t offset = 0, adjust = 0, strip = -1, keep = 0, varint_bytes = 0;
    PyObject *delimiter = NULL, *table = NULL, *layout = NULL;
    Scanner *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "in|npOOO:Scanner", keywords, &kind,
                                     &max_size, &a, &flag, &delimiter, &table, &layout)) {
        return NULL;
    }
    if (max_size < 0) {
        PyErr_SetString(PyExc_ValueError, "max_size must not be negative");
        return NULL;
    }
    switch (kind) {
    case K_BINARY:
        if (check_width((long)a) < 0) {
            return NULL;
        }
        break;
    case K_ASCII:
        if (a < 1 || a > 20) {
            PyErr_SetString(PyExc_ValueError, "digits must be 1 to 20");
            return NULL;
        }
        break;
    case K_NETSTRING:
        if (a < 1 || a > 20) {
            PyErr_SetString(PyExc_ValueError, "a netstring length has 1 to 20 digits");
            return NULL;
        }
        break;
    case K_FIXED:
        if (a < 1 || a > max_size) {
            PyErr_SetString(PyExc_ValueError, "a fixed size is in 1..max_size");
            return NULL;
        }
        break;
    case K_VARINT:
    case K_TYPED:
        break;
    case K_DELIMITED:
        if (delimiter == NULL || !PyBytes_Check(delimiter) || PyBytes_GET_SIZE(delimiter) < 1) {
            PyErr_SetString(PyExc_ValueError, "delimiter must be non-empty bytes");
            return NULL;
        }
        break;
    case K_FIELD:
        /* layout = (offset, adjust, strip, keep, varint_bytes); delimiter = trailer */
        if (a < 0 || a > 8) {
            PyErr_SetString(PyExc_ValueError, "a length field has 1 to 8 bytes (0: varint)");
            return NULL;
        }
        if (delimiter == NULL || !PyBytes_Check(delimiter)) {
            PyErr_SetString(PyExc_TypeError, "a length field's trailer must be bytes");
            return NULL;
        }
        if (layout == NULL
            || !PyArg_ParseTuple(layout, "nnnnn;layout is (offset, adjust, strip, keep, "
                                 "varint_bytes)", &offset, &adjust, &strip, &keep, &varint_bytes)) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "a length field needs its layout");
            }
            return NULL;
        }
        if (offset < 0 || offset > (1L << 30) || strip < -1 || strip > (1L << 30)
            || keep < 0 || keep > offset || adjust < -(1LL << 40) || adjust > (1LL << 40)
            || (a == 0 && (varint_bytes < 1 || varint_bytes > 10))) {
            PyErr_SetString(PyExc_ValueError, "length field layout out of range");
            return NULL;
        }
        break;
    default:
        PyErr_Format(PyExc_ValueError, "unknown scanner kind %d", kind);
        return NULL;
    }
    self = (Scanner *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->kind = kind;
    self->flag = flag;
    self->a = a;
    self->max_size = max_size;
    if (kind == K_DELIMITED || kind == K_FIELD) {
        self->delimiter = Py_NewRef(delimiter);
    }
    self->offset = offset;
    self->adjust = adjust;
    self->strip = strip;
    self->keep = keep;
    self->varint_bytes = varint_bytes;
    if (kind == K_TYPED) {
        if (table == NULL) {
            PyErr_SetString(PyExc_TypeError, "a typed scanner needs a table");
            Py_DECREF(self);
            return NULL;
        }
        if (scanner_set_table(self, type, table) < 0) {
            Py_DECREF(self);
            return NULL;
        }
    }
    return (PyObject *)self;
}

static void
scanner_dealloc(Scanner *self)
{
    PyTypeObject *type = Py_TYPE(self);
    scanner_free_table(self);
    Py_CLEAR(self->delimiter);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyMethodDef scanner_methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scanner_scan, METH_FASTCALL, scanner_scan_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(scanner_doc,
"Scanner(kind, max_size, a=0, flag=False, delimiter=None, table=None, layout=None)\n\n"
"The decode loop of one framing; see the comment above this type in _speedups.c.\n"
"Built by aiomsg.framing, once per framing.");

static PyType_Slot scanner_slots[] = {
    {Py_tp_new, scanner_new},
    {Py_tp_dealloc, scanner_dealloc},
    {Py_tp_methods, scanner_methods},
    {Py_tp_doc, (void *)scanner_doc},
    {0, NULL},
};

static PyType_Spec scanner_spec = {
    "aiomsg._speedups.Scanner",
    sizeof(Scanner),
    0,
    Py_TPFLAGS_DEFAULT,
    scanner_slots,
};

/* The wire bytes of one message, length header first, in one new bytes object.
 * NULL with an exception set; or NULL with none and *over set to the message's
 * size when it is longer than max_size (the caller says what that means). */
static PyObject *
encode_message(PyObject *message, long width, int little, Py_ssize_t max_size, Py_ssize_t *over)
{
    Py_buffer view;
    PyObject *result;
    unsigned char *q;

    *over = -1;
    if (PyObject_GetBuffer(message, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (view.len > max_size) {
        *over = view.len;
        PyBuffer_Release(&view);
        return NULL;
    }
    result = PyBytes_FromStringAndSize(NULL, width + view.len);
    if (result != NULL) {
        q = (unsigned char *)PyBytes_AS_STRING(result);
        write_length(q, (unsigned long long)view.len, width, little);
        memcpy(q + width, view.buf, (size_t)view.len);
    }
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(encode_doc,
"encode(message, width, little, max_size) -> bytes | None\n\n"
"Return the length header followed by the message, in one new bytes object;\n"
"None when the message is longer than max_size.");

static PyObject *
encode(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    long width;
    int little;
    Py_ssize_t max_size, over;
    PyObject *result;

    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "encode() takes 4 arguments");
        return NULL;
    }
    if (parse_options(args + 1, &width, &little, &max_size) < 0) {
        return NULL;
    }
    result = encode_message(args[0], width, little, max_size, &over);
    if (result == NULL && over >= 0) {
        Py_RETURN_NONE;
    }
    return result;
}

/* --- Encoder: encode() bound to one framing, for the fronts' send() ---
 *
 * send() is called once per message; with the options parsed once, here, it
 * costs one C call instead of a Python method around encode(). A message over
 * max_size raises what too_large(size) returns (the framing builds the error, so
 * its text lives in Python). The Encoder holds too_large, a bound method of its
 * framing, which holds no Encoder: no cycle, so no GC support is needed.
 */

typedef struct {
    PyObject_HEAD
    long width;
    int little;
    Py_ssize_t max_size;
    PyObject *too_large;
} Encoder;

static PyObject *
encoder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *width, *little, *max_size, *too_large;
    PyObject *options[3];
    Encoder *self;

    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "Encoder() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "Encoder", 4, 4, &width, &little, &max_size, &too_large)) {
        return NULL;
    }
    if (!PyCallable_Check(too_large)) {
        PyErr_SetString(PyExc_TypeError, "too_large must be callable");
        return NULL;
    }
    self = (Encoder *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    options[0] = width;
    options[1] = little;
    options[2] = max_size;
    if (parse_options(options, &self->width, &self->little, &self->max_size) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    self->too_large = Py_NewRef(too_large);
    return (PyObject *)self;
}

static void
encoder_dealloc(Encoder *self)
{
    PyTypeObject *type = Py_TYPE(self);
    Py_CLEAR(self->too_large);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

PyDoc_STRVAR(encoder_encode_doc,
"encode(message) -> bytes\n\n"
"The length header followed by the message, in one new bytes object. Raises\n"
"too_large(len(message)) when the message is longer than max_size.");

static PyObject *
encoder_encode(Encoder *self, PyObject *message)
{
    Py_ssize_t over;
    PyObject *result, *size, *error;

    result = encode_message(message, self->width, self->little, self->max_size, &over);
    if (result != NULL || over < 0) {
        return result;
    }
    size = PyLong_FromSsize_t(over);
    if (size == NULL) {
        return NULL;
    }
    error = PyObject_CallOneArg(self->too_large, size);
    Py_DECREF(size);
    if (error == NULL) {
        return NULL;
    }
    if (PyExceptionInstance_Check(error)) {
        PyErr_SetObject((PyObject *)Py_TYPE(error), error);
    } else {
        PyErr_SetString(PyExc_TypeError, "too_large() must return an exception");
    }
    Py_DECREF(error);
    return NULL;
}

static PyMethodDef encoder_methods[] = {
    {"encode", (PyCFunction)encoder_encode, METH_O, encoder_encode_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(encoder_doc,
"Encoder(width, little, max_size, too_large)\n\n"
"encode() with one LengthPrefixed framing's options bound; see the comment\n"
"above this type in _speedups.c. Built by aiomsg.framing, once per framing.");

static PyType_Slot encoder_slots[] = {
    {Py_tp_new, encoder_new},
    {Py_tp_dealloc, encoder_dealloc},
    {Py_tp_methods, encoder_methods},
    {Py_tp_doc, (void *)encoder_doc},
    {0, NULL},
};

static PyType_Spec encoder_spec = {
    "aiomsg._speedups.Encoder",
    sizeof(Encoder),
    0,
    Py_TPFLAGS_DEFAULT,
    encoder_slots,
};

PyDoc_STRVAR(encode_many_doc,
"encode_many(messages, width, little, max_size) -> bytes | int\n\n"
"Return the wire bytes of every message, in order, in one new bytes object;\n"
"or, when one message is longer than max_size, its index (nothing is encoded).");

static PyObject *
encode_many(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    long width;
    int little;
    Py_ssize_t max_size, count, i, total = 0, offset = 0;
    PyObject *seq, *result = NULL;
    unsigned char *q;
    Py_buffer view;

    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "encode_many() takes 4 arguments");
        return NULL;
    }
    if (parse_options(args + 1, &width, &little, &max_size) < 0) {
        return NULL;
    }
    /* A tuple, not the caller's list: a buffer hook written in Python could
       change a list while we walk it. */
    seq = PySequence_Tuple(args[0]);
    if (seq == NULL) {
        return NULL;
    }
    count = PyTuple_GET_SIZE(seq);
    /* First pass: sizes. The buffers are released in between: holding one per
       message at once would need an array as long as the batch. */
    for (i = 0; i < count; i++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(seq, i), &view, PyBUF_SIMPLE) < 0) {
            goto done;
        }
        PyBuffer_Release(&view);
        if (view.len > max_size) {
            result = PyLong_FromSsize_t(i);
            goto done;
        }
        if (total > PY_SSIZE_T_MAX - width - view.len) {
            PyErr_NoMemory();
            goto done;
        }
        total += width + view.len;
    }
    result = PyBytes_FromStringAndSize(NULL, total);
    if (result == NULL) {
        goto done;
    }
    q = (unsigned char *)PyBytes_AS_STRING(result);
    for (i = 0; i < count; i++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(seq, i), &view, PyBUF_SIMPLE) < 0) {
            Py_CLEAR(result);
            goto done;
        }
        if (view.len > total - offset - width) {
            /* A buffer grew between the two passes: only a custom buffer
               object running code from its buffer hook could do that. */
            PyBuffer_Release(&view);
            Py_CLEAR(result);
            PyErr_SetString(PyExc_RuntimeError, "a message changed size while encoding");
            goto done;
        }
        write_length(q + offset, (unsigned long long)view.len, width, little);
        memcpy(q + offset + width, view.buf, (size_t)view.len);
        offset += width + view.len;
        PyBuffer_Release(&view);
    }
    if (offset != total) {
        Py_CLEAR(result);
        PyErr_SetString(PyExc_RuntimeError, "a message changed size while encoding");
    }

done:
    Py_DECREF(seq);
    return result;
}

/* --- BodyBuffer: a long message's body, collected where it will be handed over ---
 *
 * The body is collected in a bytes object that this type owns alone, grown as
 * bytes arrive (to at most twice what has arrived, never to the announced size
 * up front) and handed over as the message itself when complete: no final copy.
 * An event loop may also read straight into it: window() returns a writable
 * memoryview of the next bytes, and advance(n) records what was read there.
 * While a window is in use the storage cannot move; every method that could
 * move it raises BufferError then, instead of corrupting memory.
 */

typedef struct {
    PyObject_HEAD
    PyObject *bytes;        /* owned alone (refcount 1) until finish(); NULL before the first byte */
    Py_ssize_t capacity;    /* bytes allocated in `bytes` */
    Py_ssize_t size;        /* bytes received */
    Py_ssize_t total;       /* bytes expected */
    Py_ssize_t window;      /* length of the window the next export shows */
    Py_ssize_t exports;     /* live buffer exports of the window */
} BodyBuffer;

#define MIN_GROWTH (64 * 1024)

static int
body_check_unexported(BodyBuffer *self)
{
    if (self->exports > 0) {
        PyErr_SetString(PyExc_BufferError, "the body's read window is still in use");
        return -1;
    }
    return 0;
}

/* Make room for `extra` more bytes (extra <= total - size). */
static int
body_reserve(BodyBuffer *self, Py_ssize_t extra)
{
    Py_ssize_t wanted = self->size + extra, capacity;
    if (wanted <= self->capacity) {
        return 0;
    }
    if (body_check_unexported(self) < 0) {
        return -1;
    }
    capacity = self->capacity < self->total / 2 ? 2 * self->capacity : self->total;
    if (capacity < MIN_GROWTH) {
        capacity = MIN_GROWTH;
    }
    if (capacity < wanted) {
        capacity = wanted;
    }
    if (capacity > self->total) {
        capacity = self->total;
    }
    if (self->bytes == NULL) {
        self->bytes = PyBytes_FromStringAndSize(NULL, capacity);
        if (self->bytes == NULL) {
            return -1;
        }
    }
    else if (_PyBytes_Resize(&self->bytes, capacity) < 0) {
        self->capacity = self->size = 0;  /* _PyBytes_Resize freed it */
        return -1;
    }
    self->capacity = capacity;
    return 0;
}

static PyObject *
body_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    Py_ssize_t total;
    BodyBuffer *self;
    static char *keywords[] = {"total", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "n:BodyBuffer", keywords, &total)) {
        return NULL;
    }
    if (total < 0) {
        PyErr_SetString(PyExc_ValueError, "total must not be negative");
        return NULL;
    }
    self = (BodyBuffer *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->total = total;
    }
    return (PyObject *)self;
}

static void
body_dealloc(BodyBuffer *self)
{
    PyTypeObject *type = Py_TYPE(self);
    Py_CLEAR(self->bytes);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

PyDoc_STRVAR(body_fill_doc,
"fill(data, pos) -> int\n\n"
"Copy what the body still needs from data[pos:]; return the position after it.");

static PyObject *
body_fill(BodyBuffer *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos, take;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "fill() takes 2 arguments");
        return NULL;
    }
    pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (body_check_unexported(self) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (pos < 0 || pos > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "pos is outside the data");
        return NULL;
    }
    self->window = 0;
    take = view.len - pos;
    if (take > self->total - self->size) {
        take = self->total - self->size;
    }
    if (take > 0) {
        if (body_reserve(self, take) < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
        memcpy(PyBytes_AS_STRING(self->bytes) + self->size, (char *)view.buf + pos, (size_t)take);
        self->size += take;
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(pos + take);
}

PyDoc_STRVAR(body_window_doc,
"window(limit) -> memoryview\n\n"
"A writable view of the body's next min(limit, need) bytes, to read into;\n"
"report what was read with advance(n). Release the view (or drop it) before\n"
"any other call but advance().");

static PyObject *
body_window(BodyBuffer *self, PyObject *arg)
{
    Py_ssize_t limit = PyLong_AsSsize_t(arg);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (limit > self->total - self->size) {
        limit = self->total - self->size;
    }
    if (limit <= 0) {
        PyErr_SetString(PyExc_ValueError, "the window would be empty");
        return NULL;
    }
    if (body_check_unexported(self) < 0 || body_reserve(self, limit) < 0) {
        return NULL;
    }
    self->window = limit;
    return PyMemoryView_FromObject((PyObject *)self);
}

PyDoc_STRVAR(body_advance_doc,
"advance(n) -> None\n\n"
"Record that n bytes were read into the current window.");

static PyObject *
body_advance(BodyBuffer *self, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (n < 0 || n > self->window) {
        PyErr_SetString(PyExc_ValueError, "more bytes than the window holds");
        return NULL;
    }
    self->size += n;
    self->window -= n;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(body_finish_doc,
"finish() -> bytes\n\n"
"Return the complete body, without copying it; the buffer is empty afterwards.");

static PyObject *
body_finish(BodyBuffer *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *result;
    if (self->size != self->total) {
        PyErr_SetString(PyExc_ValueError, "the body is not complete");
        return NULL;
    }
    if (body_check_unexported(self) < 0) {
        return NULL;
    }
    if (self->bytes == NULL) {
        result = PyBytes_FromStringAndSize(NULL, 0);
    }
    else {
        result = self->bytes;  /* capacity never exceeds total: already the right size */
        self->bytes = NULL;
    }
    self->capacity = self->size = self->total = self->window = 0;
    return result;
}

PyDoc_STRVAR(body_partial_doc,
"partial() -> bytes\n\n"
"A copy of the bytes received so far.");

static PyObject *
body_partial(BodyBuffer *self, PyObject *Py_UNUSED(ignored))
{
    if (self->bytes == NULL) {
        return PyBytes_FromStringAndSize(NULL, 0);
    }
    return PyBytes_FromStringAndSize(PyBytes_AS_STRING(self->bytes), self->size);
}

static PyObject *
body_get_size(BodyBuffer *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->size);
}

static PyObject *
body_get_need(BodyBuffer *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->total - self->size);
}

static int
body_getbuffer(BodyBuffer *self, Py_buffer *view, int flags)
{
    if (self->bytes == NULL || self->window <= 0) {
        PyErr_SetString(PyExc_BufferError, "no read window: call window() first");
        return -1;
    }
    if (PyBuffer_FillInfo(view, (PyObject *)self, PyBytes_AS_STRING(self->bytes) + self->size,
                          self->window, 0, flags) < 0) {
        return -1;
    }
    self->exports++;
    return 0;
}

static void
body_releasebuffer(BodyBuffer *self, Py_buffer *Py_UNUSED(view))
{
    self->exports--;
}

static PyMethodDef body_methods[] = {
    {"fill", (PyCFunction)(void (*)(void))body_fill, METH_FASTCALL, body_fill_doc},
    {"window", (PyCFunction)body_window, METH_O, body_window_doc},
    {"advance", (PyCFunction)body_advance, METH_O, body_advance_doc},
    {"finish", (PyCFunction)body_finish, METH_NOARGS, body_finish_doc},
    {"partial", (PyCFunction)body_partial, METH_NOARGS, body_partial_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef body_getset[] = {
    {"size", (getter)body_get_size, NULL, "Bytes received so far.", NULL},
    {"need", (getter)body_get_need, NULL, "Bytes still to come.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(body_doc,
"BodyBuffer(total)\n\n"
"The body of one long message, collected in the bytes object that finish()\n"
"returns. See the comment above this type in _speedups.c.");

static PyType_Slot body_slots[] = {
    {Py_tp_new, body_new},
    {Py_tp_dealloc, body_dealloc},
    {Py_tp_methods, body_methods},
    {Py_tp_getset, body_getset},
    {Py_tp_doc, (void *)body_doc},
    {Py_bf_getbuffer, body_getbuffer},
    {Py_bf_releasebuffer, body_releasebuffer},
    {0, NULL},
};

static PyType_Spec body_spec = {
    "aiomsg._speedups.BodyBuffer",
    sizeof(BodyBuffer),
    0,
    Py_TPFLAGS_DEFAULT,
    body_slots,
};

/* ---- ReadyIterator: `async for message in connection`, served from the queue ----
 * (Connection, and FramedStream: a deque of decoded messages each.)
 *
 * Why: an async generator pays for every item it yields. CPython unwraps the
 * yielded value by raising StopIteration(value), an exception object per
 * message: about half of what a pipelined message costs on the Streams front.
 * This iterator hands over a message that is already decoded straight from the
 * connection's deque: __anext__() returns the iterator itself as the awaitable,
 * and its am_send returns the message as the await's result, no exception made.
 *
 * When no message is waiting, all the rest (waiting, errors, the clean end as
 * StopAsyncIteration) is the Python coroutine slow(), and the await delegates
 * to it as `await slow()` would: send, throw and close are passed on. The
 * plain iterator protocol (__next__, send) is there too: CPython uses it
 * instead of am_send while a tracer (coverage, a debugger) is set.
 *
 * On trio every message must be a cancellation point: given trio's run
 * context, the iterator makes trio's test itself before it hands over a
 * message (aiomsg/anyio/_trio_cancel.py says how and why), and when the task
 * is cancelled it awaits slow() instead, whose receive() raises Cancelled at a
 * checkpoint as trio's own function does.
 *
 * Given `end` (anyio.EndOfStream), slow() may be the receive itself: when it
 * raises `end`, the loop ends (StopAsyncIteration), with no Python coroutine
 * around it to turn one into the other.
 */
typedef struct {
    PyObject_HEAD
    PyObject *ready;     /* collections.deque of decoded messages */
    PyObject *take;      /* ready.popleft */
    PyObject *slow;      /* () -> coroutine: the next message once it comes */
    PyObject *delegate;  /* the coroutine this await is waiting in, or NULL */
    PyObject *trio;      /* trio's run context, or NULL: no test per message */
    PyObject *task;      /* the trio task of the last test, or NULL */
    PyObject *coro;      /* its coroutine, or NULL: look the task up on each test */
    PyObject *end;       /* the exception class slow() ends with, or NULL (see below) */
} ReadyIterator;

/* Attribute names of the trio test, made once (speedups_exec). */
static PyObject *str_task, *str_coro, *str_cr_running, *str_cancel_status,
    *str_effectively_cancelled;

static PyObject *
ready_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *ready, *slow, *take, *trio = Py_None, *end = Py_None;
    ReadyIterator *self;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "ReadyIterator() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OO|OO:ReadyIterator", &ready, &slow, &trio, &end)) {
        return NULL;
    }
    if (end != Py_None && !PyExceptionClass_Check(end)) {
        PyErr_SetString(PyExc_TypeError, "end must be an exception class or None");
        return NULL;
    }
    if (!PyCallable_Check(slow)) {
        PyErr_SetString(PyExc_TypeError, "slow must be callable");
        return NULL;
    }
    take = PyObject_GetAttrString(ready, "popleft");
    if (take == NULL) {
        return NULL;
    }
    self = (ReadyIterator *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(take);
        return NULL;
    }
    self->ready = Py_NewRef(ready);
    self->take = take;
    self->slow = Py_NewRef(slow);
    self->delegate = NULL;
    self->trio = trio == Py_None ? NULL : Py_NewRef(trio);
    self->task = NULL;
    self->coro = NULL;
    self->end = end == Py_None ? NULL : Py_NewRef(end);
    return (PyObject *)self;
}

static int
ready_traverse(ReadyIterator *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->ready);
    Py_VISIT(self->take);
    Py_VISIT(self->slow);
    Py_VISIT(self->delegate);
    Py_VISIT(self->trio);
    Py_VISIT(self->task);
    Py_VISIT(self->coro);
    Py_VISIT(self->end);
    return 0;
}

static int
ready_clear(ReadyIterator *self)
{
    Py_CLEAR(self->ready);
    Py_CLEAR(self->take);
    Py_CLEAR(self->slow);
    Py_CLEAR(self->delegate);
    Py_CLEAR(self->trio);
    Py_CLEAR(self->task);
    Py_CLEAR(self->coro);
    Py_CLEAR(self->end);
    return 0;
}

static void
ready_dealloc(ReadyIterator *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    ready_clear(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

/* Whether a message is waiting: 1, 0, or -1 with an exception set. */
static int
ready_waiting(ReadyIterator *self)
{
    Py_ssize_t n = PyObject_Length(self->ready);
    return n < 0 ? -1 : n > 0;
}

/* The attribute `name` of `obj` as a truth value: 1, 0, or -1 with an exception set. */
static int
attribute_is_true(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    int result;
    if (value == NULL) {
        return -1;
    }
    result = PyObject_IsTrue(value);
    Py_DECREF(value);
    return result;
}

/* On trio, whether the running task is cancelled: 1, 0, or -1 with an exception set.
 * The task of the last test is the running one while its coroutine runs (a trio
 * task runs alone in its thread); else it is looked up again in the run context. */
static int
ready_cancelled(ReadyIterator *self)
{
    PyObject *status;
    int running = 0, result;
    if (self->trio == NULL) {
        return 0;
    }
    if (self->coro != NULL) {
        running = attribute_is_true(self->coro, str_cr_running);
        if (running < 0) {
            return -1;
        }
    }
    if (!running) {
        PyObject *task = PyObject_GetAttr(self->trio, str_task), *coro;
        if (task == NULL) {
            return -1;
        }
        coro = PyObject_GetAttr(task, str_coro);
        if (coro == NULL) {
            Py_DECREF(task);
            return -1;
        }
        if (!PyCoro_CheckExact(coro)) {  /* no cr_running to trust: look up each time */
            Py_CLEAR(coro);
        }
        Py_XSETREF(self->task, task);
        Py_XSETREF(self->coro, coro);
    }
    status = PyObject_GetAttr(self->task, str_cancel_status);
    if (status == NULL) {
        return -1;
    }
    result = attribute_is_true(status, str_effectively_cancelled);
    Py_DECREF(status);
    return result;
}

static PyObject *
ready_self(ReadyIterator *self)
{
    return Py_NewRef(self);
}

static PyObject *
ready_anext(ReadyIterator *self)
{
    int waiting;
    if (self->delegate != NULL) {
        /* An await of ours is still waiting (another task iterates): slow() says
           what that means (aiomsg raises BusyError). */
        return PyObject_CallNoArgs(self->slow);
    }
    waiting = ready_waiting(self);
    if (waiting < 0) {
        return NULL;
    }
    /* With `end`, the wait goes through this iterator too, which turns the end. */
    return waiting || self->end != NULL ? ready_self(self) : PyObject_CallNoArgs(self->slow);
}

/* The delegate raised: when it is `end`, the loop's end instead. */
static void
ready_translate_end(ReadyIterator *self)
{
    if (self->end != NULL && PyErr_ExceptionMatches(self->end)) {
        PyErr_Clear();
        PyErr_SetNone(PyExc_StopAsyncIteration);
    }
}

static PySendResult
ready_send(ReadyIterator *self, PyObject *arg, PyObject **result)
{
    PySendResult status;
    *result = NULL;
    if (self->delegate == NULL) {
        int waiting = ready_waiting(self);
        if (waiting < 0) {
            return PYGEN_ERROR;
        }
        if (waiting) {
            int cancelled = ready_cancelled(self);
            if (cancelled < 0) {
                return PYGEN_ERROR;
            }
            if (!cancelled) {  /* the common case: taken, and the await is over */
                *result = PyObject_CallNoArgs(self->take);
                return *result == NULL ? PYGEN_ERROR : PYGEN_RETURN;
            }
        }
        /* None waiting (slow() waits for one; taken by someone else since __anext__(),
           or never there when `end` is set), or the trio task is cancelled (slow()
           raises Cancelled). */
        self->delegate = PyObject_CallNoArgs(self->slow);
        if (self->delegate == NULL) {
            return PYGEN_ERROR;
        }
        arg = Py_None;  /* what a coroutine takes first */
    }
    status = PyIter_Send(self->delegate, arg, result);
    if (status != PYGEN_NEXT) {
        Py_CLEAR(self->delegate);
        if (status == PYGEN_ERROR) {
            ready_translate_end(self);
        }
    }
    return status;
}

/* am_send's result in the iterator protocol: the yielded value, or NULL with
   StopIteration(result) set (or the error). */
static PyObject *
ready_as_iteration(PySendResult status, PyObject *result)
{
    PyObject *stop;
    if (status != PYGEN_RETURN) {
        return result;  /* PYGEN_NEXT: the value; PYGEN_ERROR: NULL */
    }
    stop = PyObject_CallOneArg(PyExc_StopIteration, result);
    Py_DECREF(result);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

static PyObject *
ready_iternext(ReadyIterator *self)
{
    PyObject *result;
    PySendResult status = ready_send(self, Py_None, &result);
    return ready_as_iteration(status, result);
}

static PyObject *
ready_send_method(ReadyIterator *self, PyObject *arg)
{
    PyObject *result;
    PySendResult status = ready_send(self, arg, &result);
    return ready_as_iteration(status, result);
}

static PyObject *
ready_throw(ReadyIterator *self, PyObject *args)
{
    PyObject *throw, *result, *typ, *val = NULL, *tb = NULL;
    if (self->delegate == NULL) {
        /* Not waiting: raise what was thrown in, as a coroutine not yet started does. */
        if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb)) {
            return NULL;
        }
        if (PyExceptionInstance_Check(typ)) {
            PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
        }
        else if (PyExceptionClass_Check(typ)) {
            PyErr_SetObject(typ, val == NULL ? Py_None : val);
        }
        else {
            PyErr_SetString(PyExc_TypeError, "throw() needs an exception");
        }
        return NULL;
    }
    throw = PyObject_GetAttrString(self->delegate, "throw");
    if (throw == NULL) {
        return NULL;
    }
    result = PyObject_Call(throw, args, NULL);
    Py_DECREF(throw);
    if (result == NULL) {  /* it ended: raised, or returned (StopIteration) */
        Py_CLEAR(self->delegate);
        ready_translate_end(self);
    }
    return result;
}

static PyObject *
ready_close(ReadyIterator *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *delegate = self->delegate, *result;
    if (delegate == NULL) {
        Py_RETURN_NONE;
    }
    self->delegate = NULL;
    result = PyObject_CallMethod(delegate, "close", NULL);
    Py_DECREF(delegate);
    return result;
}

static PyMethodDef ready_methods[] = {
    {"send", (PyCFunction)ready_send_method, METH_O, NULL},
    {"throw", (PyCFunction)ready_throw, METH_VARARGS, NULL},
    {"close", (PyCFunction)ready_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(ready_doc,
"ReadyIterator(ready, slow, trio=None, end=None)\n\n"
"An async iterator of messages: each one waiting in the deque `ready` is taken\n"
"without suspending; when none is, it awaits the coroutine slow(), which returns\n"
"the next message or raises StopAsyncIteration. Given trio's run context, it\n"
"awaits slow() too when the running trio task is cancelled. Given `end`, an\n"
"exception class, slow() raising it ends the loop (StopAsyncIteration). Built by\n"
"Connection.__aiter__ and FramedStream.__aiter__.");

static PyType_Slot ready_slots[] = {
    {Py_tp_new, ready_new},
    {Py_tp_dealloc, ready_dealloc},
    {Py_tp_traverse, ready_traverse},
    {Py_tp_clear, ready_clear},
    {Py_tp_iternext, ready_iternext},
    {Py_tp_methods, ready_methods},
    {Py_tp_doc, (void *)ready_doc},
    {Py_am_await, ready_self},
    {Py_am_aiter, ready_self},
    {Py_am_anext, ready_anext},
    {Py_am_send, ready_send},
    {0, NULL},
};

static PyType_Spec ready_spec = {
    "aiomsg._speedups.ReadyIterator",
    sizeof(ReadyIterator),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    ready_slots,
};

static int
add_type(PyObject *module, PyType_Spec *spec, const char *name)
{
    PyObject *type = PyType_FromModuleAndSpec(module, spec, NULL);
    int result;
    if (type == NULL) {
        return -1;
    }
    result = PyModule_AddObjectRef(module, name, type);
    Py_DECREF(type);
    return result;
}

static int
intern_names(void)
{
    struct { PyObject **slot; const char *text; } names[] = {
        {&str_task, "task"},
        {&str_coro, "coro"},
        {&str_cr_running, "cr_running"},
        {&str_cancel_status, "_cancel_status"},
        {&str_effectively_cancelled, "effectively_cancelled"},
    };
    size_t i;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].slot == NULL) {  /* kept for the life of the process */
            *names[i].slot = PyUnicode_InternFromString(names[i].text);
            if (*names[i].slot == NULL) {
                return -1;
            }
        }
    }
    return 0;
}

static int
speedups_exec(PyObject *module)
{
    if (intern_names() < 0) {
        return -1;
    }
    if (add_type(module, &body_spec, "BodyBuffer") < 0
            || add_type(module, &scanner_spec, "Scanner") < 0
            || add_type(module, &encoder_spec, "Encoder") < 0
            || add_type(module, &ready_spec, "ReadyIterator") < 0) {
        return -1;
    }
    return PyModule_AddIntConstant(module, "K_BINARY", K_BINARY) < 0
        || PyModule_AddIntConstant(module, "K_ASCII", K_ASCII) < 0
        || PyModule_AddIntConstant(module, "K_NETSTRING", K_NETSTRING) < 0
        || PyModule_AddIntConstant(module, "K_VARINT", K_VARINT) < 0
        || PyModule_AddIntConstant(module, "K_FIXED", K_FIXED) < 0
        || PyModule_AddIntConstant(module, "K_TYPED", K_TYPED) < 0
        || PyModule_AddIntConstant(module, "K_DELIMITED", K_DELIMITED) < 0
        || PyModule_AddIntConstant(module, "K_FIELD", K_FIELD) < 0 ? -1 : 0;
}

static PyMethodDef speedups_methods[] = {
    {"encode", (PyCFunction)(void (*)(void))encode, METH_FASTCALL, encode_doc},
    {"encode_many", (PyCFunction)(void (*)(void))encode_many, METH_FASTCALL, encode_many_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "aiomsg._speedups",
    "C speedups for aiomsg's codecs; aiomsg works without them, only slower.",
    0,
    speedups_methods,
    speedups_slots,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
