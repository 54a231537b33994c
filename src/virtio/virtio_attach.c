/* virtio_attach.c: a virtio device onto the VM's transport: the next PCI slot or MMIO window. */
#include "virtio/virtio_attach.h"

#include <errno.h>

#include "virtio/virtio_mmio.h"
#include "virtio/virtio_pci.h"

static int attach_pci(struct virtio_env *env, struct virtio_device *vd, struct device **out)
{
    const struct virtio_pci_config pc = {.bus = env->pci, .irqs = env->irqs, .log = env->log};
    struct virtio_pci *t;
    int ret = virtio_pci_create(vd, &pc, &t);
    if (ret == 0)
        *out = virtio_pci_device(t);
    return ret;
}

static int attach_mmio(struct virtio_env *env, struct virtio_device *vd, struct device **out)
{
    struct virtio_mmio_config mc = {.irqs = env->irqs, .log = env->log, .index = env->mmio_next};
    int ret = virtio_mmio_slot(env->mmio_next, &mc.base, &mc.gsi);
    struct virtio_mmio *t;
    if (ret == 0)
        ret = virtio_mmio_create(vd, &mc, &t);
    if (ret == 0) {
        env->mmio_next++;
        *out = virtio_mmio_device(t);
    }
    return ret;
}

int virtio_attach(struct virtio_env *env, struct virtio_device *vd, struct device **out)
{
    *out = NULL;
    int ret =
        env->transport == KILN_TRANSPORT_PCI ? attach_pci(env, vd, out) : attach_mmio(env, vd, out);
    if (ret < 0)
        virtio_device_free(vd);
    return ret;
}

const char *virtio_transport_name(const struct virtio_env *env)
{
    return env->transport == KILN_TRANSPORT_PCI ? "virtio-pci" : "virtio-mmio";
}

int virtio_mmio_cmdline(char *buf, size_t size, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint64_t base;
        unsigned gsi;
        int ret = virtio_mmio_slot(i, &base, &gsi);
        if (ret == 0)
            ret = virtio_mmio_cmdline_append(buf, size, base, gsi);
        if (ret < 0)
            return ret;
    }
    return 0;
}

uint16_t virtio_mmio_level_irqs(unsigned n)
{
    uint16_t irqs = 0;
    for (unsigned i = 0; i < n; i++) {
        uint64_t base;
        unsigned gsi;
        if (virtio_mmio_slot(i, &base, &gsi) == 0 && gsi < 16)
            irqs |= (uint16_t)(1u << gsi);
    }
    return irqs;
}
