/* sandbox.h: seccomp filters for a VM's threads: compiled once per VM, entered by each thread. */
#ifndef KILN_SANDBOX_H
#define KILN_SANDBOX_H

#include <linux/filter.h>
#include <stdbool.h>

/* What a thread does decides the system calls it may make. */
enum sandbox_role {
    SANDBOX_VCPU,   /* KVM_RUN and the device emulation behind its exits */
    SANDBOX_LOOP,   /* the event loop: back ends, timers, teardown after the run */
    SANDBOX_WORKER, /* libuv threadpool: disk reads, writes, flushes, discards */
    SANDBOX_ROLES,
};

/* What the filters must allow besides the basics (the VM's configuration decides it). */
struct sandbox_spec {
    bool roles[SANDBOX_ROLES]; /* which roles get a filter at all */
    bool user_net;             /* libslirp: sockets, and reading /etc/resolv.conf */
    bool disks;                /* the loop closes disk images: metadata write-back and flush */
    bool shares;               /* the loop serves 9P: opens, reads and lists beneath a share */
    /* vsock: the loop accepts and makes unix sockets, and unlinks this path at teardown, passed
     * as this very pointer (the filter compares the address); NULL: no vsock. */
    const char *vsock_path;
    /* The loop serves the API socket: accepts clients, reads their requests with any file
     * descriptors sent along (recvmsg). */
    bool api;
    /* The API's snapshot: the loop reads the vCPUs' and KVM's state and fills two files it was
     * given, by the caller or with a request (checks, write, seek, truncate, sync: no path is
     * opened). */
    bool snapshot;
};

/* The compiled filters of one VM (BPF programs, read-only once built). */
struct sandbox {
    struct sock_fprog prog[SANDBOX_ROLES]; /* .filter NULL: that role runs unfiltered */
};

/* Compile the filters spec asks for. Returns 0 or -errno with a message in errmsg. */
int sandbox_build(struct sandbox *sb, const struct sandbox_spec *spec, char *errmsg);

/*
 * Confine the calling thread for the rest of its life (no_new_privs, then the role's filter);
 * a forbidden call raises SIGSYS (SIGSYS is unblocked in the thread). 0 if the role has no
 * filter. Returns 0 or -errno.
 */
int sandbox_enter(const struct sandbox *sb, enum sandbox_role role);

/* sandbox_enter, unless this thread has entered a role through this function before. */
int sandbox_enter_once(const struct sandbox *sb, enum sandbox_role role);

/* True if role has a filter. */
bool sandbox_confines(const struct sandbox *sb, enum sandbox_role role);

void sandbox_free(struct sandbox *sb);

#endif
