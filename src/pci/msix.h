/* msix.h: an MSI-X function model: capability, vector table and PBA, masking and pending bits. */
#ifndef KILN_MSIX_H
#define KILN_MSIX_H

#include <stdbool.h>
#include <stdint.h>

#include "pci/pci.h"
#include "util.h"

#define MSIX_MAX_VECTORS 2048 /* the table size field has 11 bits */
#define MSIX_ENTRY_SIZE 16

/* Message control register (capability offset 2). */
#define MSIX_CTRL_TABLE_SIZE 0x07ff
#define MSIX_CTRL_MASKALL 0x4000
#define MSIX_CTRL_ENABLE 0x8000

#define MSIX_VECTOR_MASKED 0x1 /* vector control: mask bit */

/* Send message data to address: the owner turns this into an interrupt (KVM irqfd, a test). */
typedef void (*msix_deliver_fn)(void *ctx, unsigned vector, uint64_t addr, uint32_t data);

struct msix_entry {
    uint32_t addr_lo, addr_hi, data, ctrl;
};

/*
 * Not thread-safe: the owner serializes every call (its device lock) and deliver runs inside
 * those calls, with that lock held.
 */
struct msix {
    unsigned nvec;
    struct msix_entry *table;
    uint64_t *pba; /* one pending bit per vector */
    bool enabled;  /* MSI-X enable in message control */
    bool masked;   /* function mask in message control */
    unsigned cap;  /* config offset of the capability (msix_add_cap) */
    msix_deliver_fn deliver;
    void *ctx;
    const struct kiln_log *log;
    bool bad_access_logged;
};

enum msix_fire_result {
    MSIX_DELIVERED,
    MSIX_PENDING,    /* masked: delivered when unmasked */
    MSIX_DISABLED,   /* MSI-X is off: the owner uses INTx */
    MSIX_BAD_VECTOR, /* beyond the table */
};

/* nvec vectors (1..MSIX_MAX_VECTORS), all masked, none pending. Returns 0, -EINVAL, -ENOMEM. */
int msix_init(struct msix *m, unsigned nvec, msix_deliver_fn deliver, void *ctx,
              const struct kiln_log *log);
void msix_destroy(struct msix *m);

/* Bytes the table and the PBA take in their BAR(s). */
uint32_t msix_table_bytes(const struct msix *m);
uint32_t msix_pba_bytes(const struct msix *m);

/*
 * Add the capability to dev: table at table_off in BAR table_bar, PBA at pba_off in BAR
 * pba_bar (offsets 8-byte aligned). Enable and function mask become writable.
 * Returns the capability offset or -errno.
 */
int msix_add_cap(struct msix *m, struct pci_device *dev, unsigned table_bar, uint32_t table_off,
                 unsigned pba_bar, uint32_t pba_off);

/* After a config write to dev: apply a change of the message control register. */
void msix_cfg_written(struct msix *m, const struct pci_device *dev, unsigned off, unsigned len);

/* Message control written: enable and function mask; unmasking delivers pending vectors. */
void msix_write_control(struct msix *m, uint16_t control);

/*
 * Guest accesses relative to the start of the table / PBA. Only aligned 4- and 8-byte accesses
 * inside the structure are honoured (PCI's rule); others read all ones and are ignored.
 */
void msix_table_access(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
void msix_pba_access(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool is_write);

/* An interrupt on vector: deliver it now, or remember it while masked. */
enum msix_fire_result msix_fire(struct msix *m, unsigned vector);

bool msix_enabled(const struct msix *m);
/* Snapshot: the table, pending bits and control state; restore into an msix of as many vectors. */
struct device_state;
void msix_save(const struct msix *m, struct device_state *st);
int msix_restore(struct msix *m, struct device_state *st);
bool msix_is_pending(const struct msix *m, unsigned vector);

#endif
