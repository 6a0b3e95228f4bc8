/* Optional C versions of the hottest loops of aiomsg's binary length prefix.
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

static PyMethodDef speedups_methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL, scan_doc},
    {"encode", (PyCFunction)(void (*)(void))encode, METH_FASTCALL, encode_doc},
    {"encode_many", (PyCFunction)(void (*)(void))encode_many, METH_FASTCALL, encode_many_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef_Slot speedups_slots[] = {
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "aiomsg._speedups",
    "C loops for LengthPrefixed; aiomsg works without them, only slower.",
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
