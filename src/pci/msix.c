/* msix.c: MSI-X vector table, pending bits and the function/vector masking rules (no KVM). */
#include "pci/msix.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

int msix_init(struct msix *m, unsigned nvec, msix_deliver_fn deliver, void *ctx,
              const struct kiln_log *log)
{
    memset(m, 0, sizeof(*m));
    if (nvec == 0 || nvec > MSIX_MAX_VECTORS || !deliver)
        return -EINVAL;
    m->table = calloc(nvec, sizeof(*m->table));
    m->pba = calloc((nvec + 63) / 64, sizeof(*m->pba));
    if (!m->table || !m->pba) {
        msix_destroy(m);
        return -ENOMEM;
    }
    m->nvec = nvec;
    for (unsigned i = 0; i < nvec; i++)
        m->table[i].ctrl = MSIX_VECTOR_MASKED; /* the reset state of every vector */
    m->deliver = deliver;
    m->ctx = ctx;
    m->log = log;
    return 0;
}

void msix_destroy(struct msix *m)
{
    free(m->table);
    free(m->pba);
    m->table = NULL;
    m->pba = NULL;
    m->nvec = 0;
}

uint32_t msix_table_bytes(const struct msix *m)
{
    return m->nvec * MSIX_ENTRY_SIZE;
}

uint32_t msix_pba_bytes(const struct msix *m)
{
    return (m->nvec + 63) / 64 * 8;
}

int msix_add_cap(struct msix *m, struct pci_device *dev, unsigned table_bar, uint32_t table_off,
                 unsigned pba_bar, uint32_t pba_off)
{
    if (table_bar >= PCI_NUM_BARS || pba_bar >= PCI_NUM_BARS || (table_off & 7) || (pba_off & 7))
        return -EINVAL;
    uint8_t body[10];
    uint16_t control = (uint16_t)(m->nvec - 1);
    uint32_t table = table_off | table_bar, pba = pba_off | pba_bar;
    memcpy(body, &control, 2);
    memcpy(body + 2, &table, 4);
    memcpy(body + 6, &pba, 4);
    int off = pci_device_add_cap(dev, PCI_CAP_ID_MSIX, body, sizeof(body));
    if (off < 0)
        return off;
    dev->wmask[off + 3] = (MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL) >> 8;
    m->cap = (unsigned)off;
    return off;
}

static bool vector_masked(const struct msix *m, unsigned v)
{
    return m->masked || (m->table[v].ctrl & MSIX_VECTOR_MASKED);
}

static void set_pending(struct msix *m, unsigned v, bool on)
{
    if (on)
        m->pba[v / 64] |= 1ULL << (v % 64);
    else
        m->pba[v / 64] &= ~(1ULL << (v % 64));
}

bool msix_is_pending(const struct msix *m, unsigned v)
{
    return v < m->nvec && (m->pba[v / 64] >> (v % 64)) & 1;
}

static void send(struct msix *m, unsigned v)
{
    const struct msix_entry *e = &m->table[v];
    m->deliver(m->ctx, v, (uint64_t)e->addr_hi << 32 | e->addr_lo, e->data);
}

/* Send what was held back while masked and is deliverable now. */
static void flush_pending(struct msix *m, unsigned first, unsigned end)
{
    if (!m->enabled)
        return;
    for (unsigned v = first; v < end && v < m->nvec; v++) {
        if (msix_is_pending(m, v) && !vector_masked(m, v)) {
            set_pending(m, v, false);
            send(m, v);
        }
    }
}

void msix_write_control(struct msix *m, uint16_t control)
{
    m->enabled = control & MSIX_CTRL_ENABLE;
    m->masked = control & MSIX_CTRL_MASKALL;
    flush_pending(m, 0, m->nvec);
}

void msix_cfg_written(struct msix *m, const struct pci_device *dev, unsigned off, unsigned len)
{
    if (m->cap && pci_cfg_overlaps(off, len, m->cap + 2, 2))
        msix_write_control(m, (uint16_t)pci_cfg_get(dev, m->cap + 2, 2));
}

bool msix_enabled(const struct msix *m)
{
    return m->enabled;
}

enum msix_fire_result msix_fire(struct msix *m, unsigned vector)
{
    if (!m->enabled)
        return MSIX_DISABLED;
    if (vector >= m->nvec)
        return MSIX_BAD_VECTOR;
    if (vector_masked(m, vector)) {
        set_pending(m, vector, true);
        return MSIX_PENDING;
    }
    send(m, vector);
    return MSIX_DELIVERED;
}

static bool access_ok(struct msix *m, uint64_t off, uint32_t len, uint32_t size)
{
    if ((len == 4 || len == 8) && off % len == 0 && off < size && len <= size - off)
        return true;
    if (!m->bad_access_logged) {
        m->bad_access_logged = true;
        klog(m->log, KILN_LOG_WARN,
             "msix: refused %u-byte access at offset 0x%llx (logged once per device)", len,
             (unsigned long long)off);
    }
    return false;
}

static uint32_t le32_at(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* One dword of the table: dw 0 address low, 1 address high, 2 data, 3 vector control. */
static void table_dword_write(struct msix *m, uint32_t dw, uint32_t v)
{
    struct msix_entry *e = &m->table[dw / 4];
    switch (dw % 4) {
    case 0:
        e->addr_lo = v & ~3u; /* dword aligned: the low two bits are reserved */
        break;
    case 1:
        e->addr_hi = v;
        break;
    case 2:
        e->data = v;
        break;
    default:
        e->ctrl = v & MSIX_VECTOR_MASKED; /* the other bits are reserved */
        flush_pending(m, dw / 4, dw / 4 + 1);
        break;
    }
}

static uint32_t table_dword_read(const struct msix *m, uint32_t dw)
{
    const struct msix_entry *e = &m->table[dw / 4];
    const uint32_t f[4] = {e->addr_lo, e->addr_hi, e->data, e->ctrl};
    return f[dw % 4];
}

void msix_table_access(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
    if (!access_ok(m, off, len, msix_table_bytes(m))) {
        if (!is_write)
            memset(data, 0xff, len);
        return;
    }
    for (uint32_t i = 0; i < len / 4; i++) {
        uint32_t dw = (uint32_t)(off / 4) + i;
        if (is_write)
            table_dword_write(m, dw, le32_at(data + 4 * i));
        else
            put_le32(data + 4 * i, table_dword_read(m, dw));
    }
}

void msix_pba_access(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
    if (!access_ok(m, off, len, msix_pba_bytes(m))) {
        if (!is_write)
            memset(data, 0xff, len);
        return;
    }
    if (is_write)
        return; /* read-only */
    for (uint32_t i = 0; i < len / 4; i++) {
        uint32_t dw = (uint32_t)(off / 4) + i;
        put_le32(data + 4 * i, (uint32_t)(m->pba[dw / 2] >> (32 * (dw % 2))));
    }
}

void msix_save(const struct msix *m, struct device_state *st)
{
    state_put_u32(st, m->nvec | (uint32_t)m->enabled << 16 | (uint32_t)m->masked << 17);
    state_put(st, m->table, m->nvec * sizeof(*m->table));
    state_put(st, m->pba, ((m->nvec + 63) / 64) * sizeof(*m->pba));
}

int msix_restore(struct msix *m, struct device_state *st)
{
    uint32_t v = state_get_u32(st);
    if (st->err || (v & 0xffff) != m->nvec || v >> 18)
        return -EINVAL;
    state_get(st, m->table, m->nvec * sizeof(*m->table));
    state_get(st, m->pba, ((m->nvec + 63) / 64) * sizeof(*m->pba));
    m->enabled = v >> 16 & 1;
    m->masked = v >> 17 & 1;
    return st->err ? -EINVAL : 0;
}
