/* Starting a CGI script with vfork: the C half of spawn.py, built by tools/native.py.

   os.posix_spawn costs a CGI request more than the script's own start needs:
   - converting its arguments (environment dict, file-action tuples, signal sets) into
     glibc's objects, and freeing them: about 21 us a request here (perf, bench.cgi);
   - glibc's checks of each dup2 target, one getrlimit each, and an mmap'd stack for the
     child, unmapped again with a TLB flush;
   - in the child, a sigaction to read and often one to write for every signal: about
     110 syscalls before the exec.
   Here the environment becomes one block with two allocations, the child uses the
   caller's stack (vfork, as _posixsubprocess does), and it sets every signal to its
   default blind: 62 syscalls. The pipes are made and wired in the same call.

   spawn(program, env, cwd, stdin, stderr) -> (pid, stdout, stdin_w); see spawn.py. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct child {
    const char *program;
    char *argv[2];
    char **envp;
    const char *cwd;
    int fds[3];     /* what becomes the script's 0, 1 and 2 */
    volatile int error; /* errno of the step that failed: the child writes our memory */
    volatile int in_cwd; /* the step was entering cwd, not exec: the error names cwd */
};

/* The vfork child, on the caller's memory and below its stack frame, until execve: only
   async-signal-safe calls, and it never returns. */
static void __attribute__((noinline, noreturn)) child_exec(struct child *c)
{
    /* Every signal arrives blocked (spawn blocked them all). A handler of the worker's
       must never run here, on its memory: reset them all before unblocking. An ignored
       signal would stay ignored through exec, so those are reset too: a script starts
       with every signal at its default, as from a login shell. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            (void)sigaction(sig, &dfl, NULL); /* glibc's own signals: EINVAL, and unused */
        }
    }
    int fds[3] = {c->fds[0], c->fds[1], c->fds[2]};
    for (int i = 0; i < 3; i++) {
        /* A source among 0-2 in another place would be overwritten by an earlier dup2. */
        if (fds[i] < 3 && fds[i] != i && (fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3)) < 0) {
            goto fail;
        }
    }
    for (int i = 0; i < 3; i++) {
        /* dup2 onto itself would leave close-on-exec set. */
        if (fds[i] == i ? fcntl(i, F_SETFD, 0) < 0 : dup2(fds[i], i) < 0) {
            goto fail;
        }
    }
    if (chdir(c->cwd) < 0) {
        c->in_cwd = 1;
        goto fail;
    }
    if (setsid() < 0) {
        goto fail;
    }
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL); /* nothing blocked, whatever the caller's */
    execve(c->program, c->argv, c->envp);
fail:
    c->error = errno;
    _exit(127);
}

/* The bytes of `obj`, or NULL with TypeError/ValueError set. */
static const char *c_string(PyObject *obj, const char *what, Py_ssize_t *size)
{
    if (!PyBytes_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes, not %.100s", what, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    const char *data = PyBytes_AS_STRING(obj);
    *size = PyBytes_GET_SIZE(obj);
    if (memchr(data, '\0', (size_t)*size) != NULL) {
        PyErr_Format(PyExc_ValueError, "embedded null byte in %s", what);
        return NULL;
    }
    return data;
}

/* The environment as execve takes it, in one allocation: NULL-terminated pointers, then
   the KEY=VALUE strings. NULL with an exception set. */
static char **env_block(PyObject *env)
{
    if (!PyDict_Check(env)) {
        PyErr_SetString(PyExc_TypeError, "env must be a dict of bytes");
        return NULL;
    }
    Py_ssize_t count = PyDict_GET_SIZE(env), total = 0, pos = 0, ksize, vsize;
    PyObject *key, *value;
    while (PyDict_Next(env, &pos, &key, &value)) {
        const char *k = c_string(key, "an environment name", &ksize);
        if (k == NULL || c_string(value, "an environment value", &vsize) == NULL) {
            return NULL;
        }
        if (ksize == 0 || memchr(k, '=', (size_t)ksize) != NULL) {
            PyErr_SetString(PyExc_ValueError, "illegal environment variable name");
            return NULL;
        }
        total += ksize + vsize + 2;
    }
    size_t pointers = sizeof(char *) * (size_t)(count + 1);
    char **block = PyMem_Malloc(pointers + (size_t)total);
    if (block == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    char *out = (char *)block + pointers;
    Py_ssize_t n = 0;
    pos = 0;
    while (PyDict_Next(env, &pos, &key, &value)) {
        ksize = PyBytes_GET_SIZE(key);
        vsize = PyBytes_GET_SIZE(value);
        block[n++] = out;
        memcpy(out, PyBytes_AS_STRING(key), (size_t)ksize);
        out[ksize] = '=';
        memcpy(out + ksize + 1, PyBytes_AS_STRING(value), (size_t)vsize);
        out[ksize + 1 + vsize] = '\0';
        out += ksize + vsize + 2;
    }
    block[n] = NULL;
    return block;
}

static void close_all(const int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            (void)close(fds[i]);
        }
    }
}

/* Wait for the child `pid`, which has exited or been killed: nothing of it may be left. */
static void reap(pid_t pid)
{
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
}

static PyObject *spawn(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "spawn(program, env, cwd, stdin, stderr)");
        return NULL;
    }
    struct child c;
    Py_ssize_t size;
    c.program = c_string(args[0], "program", &size);
    if (c.program == NULL || (c.cwd = c_string(args[2], "cwd", &size)) == NULL) {
        return NULL;
    }
    long stdin_fd = PyLong_AsLong(args[3]), stderr_fd = PyLong_AsLong(args[4]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (stdin_fd < -1 || stdin_fd > INT_MAX || stderr_fd < 0 || stderr_fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "stdin must be an fd or -1, and stderr an fd");
        return NULL;
    }
    c.envp = env_block(args[1]);
    if (c.envp == NULL) {
        return NULL;
    }
    c.argv[0] = (char *)c.program;
    c.argv[1] = NULL;
    c.error = 0;
    c.in_cwd = 0;
    /* out: the script's stdout; in: its stdin, unless the caller gave one (/dev/null). */
    int pipes[4] = {-1, -1, -1, -1}; /* out read, out write, in read, in write */
    if (pipe2(pipes, O_CLOEXEC) < 0 || (stdin_fd < 0 && pipe2(pipes + 2, O_CLOEXEC) < 0)) {
        int saved = errno;
        close_all(pipes, 4);
        PyMem_Free(c.envp);
        errno = saved;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    c.fds[0] = stdin_fd < 0 ? pipes[2] : (int)stdin_fd;
    c.fds[1] = pipes[1];
    c.fds[2] = (int)stderr_fd;

    sigset_t all, mask;
    sigfillset(&all);
    pid_t pid;
    int spawn_errno = 0;
    (void)pthread_sigmask(SIG_SETMASK, &all, &mask);
    /* The caller is suspended until the child execs or exits: let other threads run. */
    Py_BEGIN_ALLOW_THREADS
    pid = vfork();
    if (pid == 0) {
        child_exec(&c);
    }
    spawn_errno = pid < 0 ? errno : c.error;
    Py_END_ALLOW_THREADS
    (void)pthread_sigmask(SIG_SETMASK, &mask, NULL);
    PyMem_Free(c.envp);
    close_all(pipes + 1, 2); /* the script's ends: ours must not keep its EOFs away */
    if (spawn_errno != 0) {
        if (pid > 0) {
            reap(pid);
        }
        close_all((int[]){pipes[0], pipes[3]}, 2);
        errno = spawn_errno;
        return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, c.in_cwd ? args[2] : args[0]);
    }
    /* Our ends only: the script's stay blocking, as programs expect of their stdio. */
    (void)fcntl(pipes[0], F_SETFL, O_NONBLOCK);
    if (pipes[3] >= 0) {
        (void)fcntl(pipes[3], F_SETFL, O_NONBLOCK);
    }
    PyObject *result = Py_BuildValue("(iii)", (int)pid, pipes[0], pipes[3]);
    if (result == NULL) { /* no memory left to say so: nothing may outlive the call */
        close_all((int[]){pipes[0], pipes[3]}, 2);
        (void)kill(pid, SIGKILL);
        reap(pid);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"spawn", (PyCFunction)(void (*)(void))spawn, METH_FASTCALL,
     "spawn(program, env, cwd, stdin, stderr) -> (pid, stdout, stdin_w)"},
    {0},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_spawn",
    .m_doc = "CGI scripts started with vfork: see spawn.py.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__spawn(void)
{
    return PyModule_Create(&module);
}
