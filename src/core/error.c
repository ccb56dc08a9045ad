/* Error messages and the version. */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

const char *loop_version(void)
{
    return STR(LOOP_VERSION_MAJOR) "." STR(LOOP_VERSION_MINOR) "." STR(LOOP_VERSION_PATCH);
}

/*
 * Our own texts for the core's codes: stable, and worded for what they
 * mean when the core returns them.  Any other errno (the layers return
 * -ECONNREFUSED, -EPIPE, -ETIMEDOUT, -ECANCELED and more) gets the C
 * library's description, which strerrordesc_np() gives without the
 * locale and the shared buffer that make strerror() unsafe in threads.
 */
const char *loop_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case -EINVAL:
        return "invalid argument";
    case -EBADF:
        return "bad file descriptor";
    case -EPERM:
        return "file descriptor does not support polling";
    case -ENOENT:
        return "no such callback, handle or registration";
    case -EBUSY:
        return "loop is running";
    case -ENOMEM:
        return "out of memory";
    case -EMFILE:
        return "too many open files in this process";
    case -ENFILE:
        return "too many open files in the system";
    case -ENOSPC:
        return "watch limit reached";
    case -EEXIST:
        return "already registered";
    case -EAGAIN:
        return "resource temporarily unavailable";
    case -ENOSYS:
        return "not supported by this kernel";
    default:
        break;
    }
    const char *text = err < 0 && err > INT_MIN ? strerrordesc_np(-err) : NULL;
    return text ? text : "unknown error";
}
