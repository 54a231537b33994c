/* virtio_mmio.h: the virtio-over-MMIO transport (version 2 registers), a level IRQ, ioeventfds. */
#ifndef KILN_VIRTIO_MMIO_H
#define KILN_VIRTIO_MMIO_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "device.h"
#include "platform/irq_routing.h"
#include "util.h"
#include "virtio/virtio.h"

#define VIRTIO_MMIO_MAGIC 0x74726976  /* "virt" */
#define VIRTIO_MMIO_VERSION 2         /* virtio 1.x register layout, no legacy */
#define VIRTIO_MMIO_VENDOR 0x4e4c494b /* "KILN" */

/* One device: 0x100 bytes of registers, then its configuration space. */
#define VIRTIO_MMIO_SIZE 0x200
#define VIRTIO_MMIO_CONFIG_MAX (VIRTIO_MMIO_SIZE - VIRTIO_MMIO_CONFIG)

/* Register offsets (virtio 1.x, "MMIO Device Register Layout"). */
#define VIRTIO_MMIO_MAGIC_VALUE 0x000
#define VIRTIO_MMIO_VERSION_REG 0x004
#define VIRTIO_MMIO_DEVICE_ID 0x008
#define VIRTIO_MMIO_VENDOR_ID 0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES 0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES 0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL 0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX 0x034
#define VIRTIO_MMIO_QUEUE_NUM 0x038
#define VIRTIO_MMIO_QUEUE_READY 0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY 0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK 0x064
#define VIRTIO_MMIO_STATUS 0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW 0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH 0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW 0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW 0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH 0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION 0x0fc
#define VIRTIO_MMIO_CONFIG 0x100

/*
 * kiln's placement: device i at VIRTIO_MMIO_WINDOW_BASE + i * VIRTIO_MMIO_STRIDE (below the PCI
 * window at 0xe0000000), on an ISA I/O APIC pin, since Linux takes the IRQ number of a
 * virtio_mmio.device= entry as is and only IRQs 0-15 exist before ACPI or MP tables name more.
 * The pins skip the timer (0), keyboard (1), cascade (2), COM2 (3), COM1 (4), RTC (8) and PS/2
 * mouse (12). Past VIRTIO_MMIO_GSI_COUNT devices share pins: the lines are level-triggered and
 * Linux's virtio_mmio driver requests them shared.
 */
#define VIRTIO_MMIO_WINDOW_BASE 0xd0000000ULL
#define VIRTIO_MMIO_STRIDE 0x1000
#define VIRTIO_MMIO_MAX_DEVICES 16
#define VIRTIO_MMIO_GSI_COUNT 8
/* The largest index the DSDT's two-hex-digit device names (VR00..VRFF) have room for. */
#define VIRTIO_MMIO_MAX_INDEX 0xff

struct virtio_mmio;

struct virtio_mmio_config {
    struct irq_routing *irqs; /* the level line's irqfd, and KVM_IOEVENTFD via its ioctl */
    uint64_t base;            /* guest-physical address of the window */
    unsigned gsi;             /* I/O APIC pin of the device's interrupt (< 24) */
    unsigned index;           /* its place among the VM's virtio-mmio devices: its ACPI _UID */
    const struct kiln_log *log;
};

/* Where device index goes (base, GSI). Returns 0, or -ENOSPC past VIRTIO_MMIO_MAX_DEVICES. */
int virtio_mmio_slot(unsigned index, uint64_t *base, unsigned *gsi);

/*
 * Append " virtio_mmio.device=512@0x<base>:<gsi>" (the entry Linux's CONFIG_VIRTIO_MMIO_CMDLINE_
 * DEVICES parses) to the NUL-terminated string in buf of size bytes. Returns 0, or -ENOSPC
 * (buf unchanged).
 */
int virtio_mmio_cmdline_append(char *buf, size_t size, uint64_t base, unsigned gsi);

/*
 * Be vd's transport (vd initialized with virtio_device_init, at least one queue, config_len at
 * most VIRTIO_MMIO_CONFIG_MAX), with its register window at cfg->base: registers one KVM
 * ioeventfd per queue on QueueNotify and the level line's irqfd. The window is the MMIO range
 * of virtio_mmio_device(t), for the caller to put on its bus. The window must lie below 4 GiB
 * (ACPI's Memory32Fixed describes it) and index be at most VIRTIO_MMIO_MAX_INDEX. Build time
 * only. Returns 0 or -errno.
 */
int virtio_mmio_create(struct virtio_device *vd, const struct virtio_mmio_config *cfg,
                       struct virtio_mmio **out);
/*
 * Drop the ioeventfds and the irqfd and free; after virtio_mmio_stop, once no vCPU runs. The
 * bus range cannot be removed (bus.h): the bus must not dispatch to it any more (VM teardown).
 */
void virtio_mmio_destroy(struct virtio_mmio *t);

/*
 * The transport as the VM's device (device.h): the register window as MMIO range 0, and
 * start/stop/destroy/stats that also drive vd's own hooks. Its destroy frees vd too; tests that
 * own vd call virtio_mmio_destroy instead. Its describe hook writes the DSDT entry Linux's
 * virtio_mmio driver matches on ACPI: Device (VRxx) { _HID "LNRO0005", _UID index, _CRS {
 * Memory32Fixed(ReadWrite, base, VIRTIO_MMIO_SIZE), Interrupt(ResourceConsumer, Level,
 * ActiveHigh, Shared) {gsi} } }, xx the index in hex.
 */
struct device *virtio_mmio_device(struct virtio_mmio *t);

/*
 * Start/stop the loop side, as virtio_pci_start/stop: an async handle for status work, a poller
 * per queue kick eventfd and one for the line's resampling. Stop only uv_close()s; the caller
 * runs the loop once more for the close callbacks.
 */
int virtio_mmio_start(struct virtio_mmio *t, uv_loop_t *loop);
void virtio_mmio_stop(struct virtio_mmio *t);

#endif
