/* devices.h: how the VM builder makes devices: one class per kind, one environment for all. */
#ifndef KILN_DEVICES_H
#define KILN_DEVICES_H

#include <stdbool.h>
#include <uv.h>

#include "device.h"
#include "kiln.h"
#include "memory.h"
#include "platform/irq_routing.h"
#include "sandbox.h"
#include "util.h"
#include "virtio/virtio_attach.h"

/* What a device may use while it is made and while it runs; the builder (vm.c) fills it in. */
struct device_env {
    const struct kiln_config *cfg; /* the VM's configuration, strings included */
    const struct kiln_log *log;
    uv_loop_t *loop; /* the VM's event loop: back ends run here */
    const struct guest_mem *mem;
    struct irq_routing *irqs;  /* interrupt lines (irq_edge_init, irq_level_init) */
    struct virtio_env *virtio; /* where virtio devices are attached */
    struct end_vm end;         /* how a device ends the VM */
    /* The VM's seccomp filters: a device's threadpool work enters SANDBOX_WORKER. */
    const struct sandbox *sandbox;
};

/*
 * A kind of device. Adding one to kiln is a file under src/devices/ defining its class, and a
 * line naming the class in the builder's device list (vm.c).
 */
struct device_class {
    const char *name;
    /* Instances this VM has (one per --disk, say); NULL: exactly one. */
    unsigned (*count)(const struct kiln_config *cfg);
    /* Refuse a bad configuration before anything is built; NULL: nothing to check. */
    int (*check)(const struct kiln_config *cfg, char *errmsg);
    /*
     * Open what instance index takes from the host (an image file, a TAP, a user-mode network)
     * before /dev/kvm is touched, so that a bad one is reported as such on any host. Only env's
     * cfg, log, loop and mem are ready. *prepared goes to create; NULL hook: nothing to open.
     */
    int (*prepare)(const struct device_env *env, unsigned index, void **prepared, char *errmsg);
    /* Free what prepare made when create never gets it (a later step failed). */
    void (*discard)(void *prepared);
    /*
     * Make instance index (0 .. count - 1) from what prepare made (NULL without prepare), which
     * create owns from now on, even when it fails. Returns 0, or -errno with a one-line message
     * in errmsg naming the input. The device's ranges are put on the buses by the builder.
     */
    int (*create)(const struct device_env *env, unsigned index, void *prepared, struct device **out,
                  char *errmsg);
    bool virtio; /* on a virtio transport: takes a virtio-mmio slot */
};

/* How many instances of c cfg asks for. */
static inline unsigned device_class_count(const struct device_class *c,
                                          const struct kiln_config *cfg)
{
    return c->count ? c->count(cfg) : 1;
}

#endif
