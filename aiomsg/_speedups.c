/* Optional C versions of aiomsg's hottest code: the LengthPrefixed loops, and
 * the buffer that collects long message bodies for every framing.
 *
 * Why this file exists: in pure Python a 100-byte LengthPrefixed message costs
 * about 0.3 us to decode, several times what the application's own callback
 * costs. Here the loop costs one bytes allocation per message.
 *
 * Each function does only the common case and hands everything unusual back to
 * Python (aiomsg/framing/length_prefixed.py), which owns the error messages,
 * the partial-header and partial-body state: so the two paths cannot disagree
 * on anything but speed. When this module is missing (no C compiler at install
 * time, PyPy, AIOMSG_PURE_PYTHON=1), the pure-Python loops run instead.
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

PyDoc_STRVAR(scan_doc,
"scan(data, pos, width, little, max_size, out) -> int\n\n"
"Append to the list `out` every complete message of data[pos:], as bytes.\n"
"Stop at the end of the data, at a message that is not complete, or at a\n"
"header announcing more than max_size; return the position where it stopped.");

static PyObject *
scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    long width;
    int little;
    Py_ssize_t pos, end, max_size;
    PyObject *out;
    Py_buffer view;
    const unsigned char *p;

    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "scan() takes 6 arguments");
        return NULL;
    }
    pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (parse_options(args + 2, &width, &little, &max_size) < 0) {
        return NULL;
    }
    out = args[5];
    if (!PyList_Check(out)) {
        PyErr_SetString(PyExc_TypeError, "out must be a list");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    p = (const unsigned char *)view.buf;
    end = view.len;
    if (pos < 0 || pos > end) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "pos is outside the data");
        return NULL;
    }
    while (end - pos >= width) {
        unsigned long long size = read_length(p + pos, width, little);
        PyObject *message;
        if (size > (unsigned long long)max_size
                || size > (unsigned long long)(end - pos - width)) {
            break;
        }
        message = PyBytes_FromStringAndSize((const char *)p + pos + width, (Py_ssize_t)size);
        if (message == NULL) {
            goto error;
        }
        if (PyList_Append(out, message) < 0) {
            Py_DECREF(message);
            goto error;
        }
        Py_DECREF(message);
        pos += width + (Py_ssize_t)size;
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(pos);

error:
    PyBuffer_Release(&view);
    return NULL;
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
    Py_ssize_t max_size;
    Py_buffer view;
    PyObject *result;
    unsigned char *q;

    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "encode() takes 4 arguments");
        return NULL;
    }
    if (parse_options(args + 1, &width, &little, &max_size) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (view.len > max_size) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
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

static int
speedups_exec(PyObject *module)
{
    PyObject *type = PyType_FromModuleAndSpec(module, &body_spec, NULL);
    if (type == NULL) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "BodyBuffer", type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    Py_DECREF(type);
    return 0;
}

static PyMethodDef speedups_methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL, scan_doc},
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
