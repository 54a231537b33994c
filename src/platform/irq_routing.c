/* irq_routing.c: owns the KVM GSI routing table and builds irqfd-backed MSI and INTx lines. */
#include "platform/irq_routing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define PIC_PINS 8
#define PIC_GSIS 16 /* GSIs the two cascaded PICs also receive */

struct irq_routing {
    struct vm_ioctl vmi;
    const struct kiln_log *log;
    pthread_mutex_t lock;
    struct kvm_irq_routing *table; /* header + cap entries */
    unsigned cap;
    unsigned next_gsi;
};

static struct kvm_irq_routing_entry irqchip_entry(unsigned gsi, unsigned chip, unsigned pin)
{
    struct kvm_irq_routing_entry e = {.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP};
    e.u.irqchip.irqchip = chip;
    e.u.irqchip.pin = pin;
    return e;
}

static int grow(struct irq_routing *r, unsigned need)
{
    if (need <= r->cap)
        return 0;
    unsigned cap = r->cap ? r->cap * 2 : 64;
    while (cap < need)
        cap *= 2;
    struct kvm_irq_routing *t =
        realloc(r->table, sizeof(*t) + (size_t)cap * sizeof(struct kvm_irq_routing_entry));
    if (!t)
        return -ENOMEM;
    r->table = t;
    r->cap = cap;
    return 0;
}

/* The table KVM_CREATE_IRQCHIP installed: what every later KVM_SET_GSI_ROUTING must repeat. */
static void add_defaults(struct irq_routing *r)
{
    struct kvm_irq_routing_entry *e = r->table->entries;
    unsigned n = 0;
    for (unsigned gsi = 0; gsi < IRQ_ROUTING_IRQCHIP_GSIS; gsi++) {
        e[n++] = irqchip_entry(gsi, KVM_IRQCHIP_IOAPIC, gsi);
        if (gsi < PIC_GSIS)
            e[n++] = irqchip_entry(
                gsi, gsi < PIC_PINS ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8);
    }
    r->table->nr = n;
    r->table->flags = 0;
}

int irq_routing_create(const struct vm_ioctl *vmi, const struct kiln_log *log,
                       struct irq_routing **out)
{
    *out = NULL;
    struct irq_routing *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    if (grow(r, IRQ_ROUTING_IRQCHIP_GSIS + PIC_GSIS) < 0) {
        free(r);
        return -ENOMEM;
    }
    r->vmi = *vmi;
    r->log = log;
    pthread_mutex_init(&r->lock, NULL);
    r->next_gsi = IRQ_ROUTING_IRQCHIP_GSIS;
    add_defaults(r);
    *out = r;
    return 0;
}

void irq_routing_destroy(struct irq_routing *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->lock);
    free(r->table);
    free(r);
}

const struct vm_ioctl *irq_routing_vm(const struct irq_routing *r)
{
    return &r->vmi;
}

unsigned irq_routing_count(const struct irq_routing *r)
{
    return r->table->nr;
}

static void set_msi(struct kvm_irq_routing_entry *e, unsigned gsi, uint64_t addr, uint32_t data)
{
    memset(e, 0, sizeof(*e));
    e->gsi = gsi;
    e->type = KVM_IRQ_ROUTING_MSI;
    e->u.msi.address_lo = (uint32_t)addr;
    e->u.msi.address_hi = (uint32_t)(addr >> 32);
    e->u.msi.data = data;
}

static int commit(struct irq_routing *r)
{
    return r->vmi.fn(r->vmi.ctx, KVM_SET_GSI_ROUTING, r->table);
}

int irq_routing_add_msi(struct irq_routing *r, uint64_t addr, uint32_t data, unsigned *gsi)
{
    pthread_mutex_lock(&r->lock);
    int ret = r->next_gsi < IRQ_ROUTING_MAX_GSI ? grow(r, r->table->nr + 1) : -ENOSPC;
    if (ret == 0) {
        set_msi(&r->table->entries[r->table->nr], r->next_gsi, addr, data);
        r->table->nr++;
        ret = commit(r);
        if (ret < 0)
            r->table->nr--; /* KVM kept the old table: so do we */
        else
            *gsi = r->next_gsi++;
    }
    pthread_mutex_unlock(&r->lock);
    return ret < 0 ? ret : 0;
}

int irq_routing_update_msi(struct irq_routing *r, unsigned gsi, uint64_t addr, uint32_t data)
{
    pthread_mutex_lock(&r->lock);
    int ret = -ENOENT;
    for (unsigned i = 0; i < r->table->nr; i++) {
        struct kvm_irq_routing_entry *e = &r->table->entries[i];
        if (e->gsi != gsi || e->type != KVM_IRQ_ROUTING_MSI)
            continue;
        struct kvm_irq_routing_entry old = *e;
        set_msi(e, gsi, addr, data);
        ret = commit(r);
        if (ret < 0)
            *e = old;
        break;
    }
    pthread_mutex_unlock(&r->lock);
    return ret < 0 ? ret : 0;
}

/* ---- MSI sources. */

void irq_msi_init(struct irq_msi *m)
{
    *m = (struct irq_msi){.gsi = -1, .fd = -1};
}

static int irqfd(struct irq_routing *r, int fd, unsigned gsi, int resample_fd)
{
    struct kvm_irqfd req = {.fd = (uint32_t)fd, .gsi = gsi};
    if (resample_fd >= 0) {
        req.flags = KVM_IRQFD_FLAG_RESAMPLE;
        req.resamplefd = (uint32_t)resample_fd;
    }
    return r->vmi.fn(r->vmi.ctx, KVM_IRQFD, &req);
}

/* First use: an eventfd, a route for addr/data, and the irqfd binding the two. */
static int msi_setup(struct irq_routing *r, struct irq_msi *m, uint64_t addr, uint32_t data)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    unsigned gsi;
    int ret = irq_routing_add_msi(r, addr, data, &gsi);
    if (ret == 0)
        ret = irqfd(r, fd, gsi, -1);
    if (ret < 0) {
        close(fd); /* a route without its irqfd stays unused: GSIs are not reclaimed */
        return ret;
    }
    *m = (struct irq_msi){.gsi = (int)gsi, .fd = fd, .addr = addr, .data = data};
    return 0;
}

static int signal_fd(int fd)
{
    uint64_t one = 1;
    /* EAGAIN: the counter is saturated, so an interrupt is pending anyway. */
    if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return -errno;
    return 0;
}

int irq_msi_send(struct irq_routing *r, struct irq_msi *m, uint64_t addr, uint32_t data)
{
    int ret = 0;
    if (m->fd < 0) {
        ret = msi_setup(r, m, addr, data);
    } else if (m->addr != addr || m->data != data) {
        /* The guest re-targeted the vector (e.g. IRQ affinity): KVM must route it anew. */
        ret = irq_routing_update_msi(r, (unsigned)m->gsi, addr, data);
        if (ret == 0) {
            m->addr = addr;
            m->data = data;
        }
    }
    return ret < 0 ? ret : signal_fd(m->fd);
}

void irq_msi_release(struct irq_msi *m)
{
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
}

/* ---- Level-triggered lines. */

int irq_level_init(struct irq_routing *r, unsigned gsi, struct irq_level *l)
{
    *l = (struct irq_level){.gsi = gsi, .fd = -1, .resample_fd = -1};
    if (gsi >= IRQ_ROUTING_IRQCHIP_GSIS)
        return -EINVAL; /* resampling needs an irqchip pin */
    l->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    l->resample_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int ret = l->fd < 0 || l->resample_fd < 0 ? -errno : irqfd(r, l->fd, gsi, l->resample_fd);
    if (ret < 0) {
        irq_level_release(l);
        return ret;
    }
    return 0;
}

void irq_level_release(struct irq_level *l)
{
    if (l->fd >= 0)
        close(l->fd);
    if (l->resample_fd >= 0)
        close(l->resample_fd);
    l->fd = l->resample_fd = -1;
}

int irq_level_assert(const struct irq_level *l)
{
    return l->fd < 0 ? -EBADF : signal_fd(l->fd);
}

bool irq_level_resampled(const struct irq_level *l)
{
    uint64_t n;
    return l->resample_fd >= 0 && read(l->resample_fd, &n, sizeof(n)) == (ssize_t)sizeof(n);
}

int irq_edge_init(struct irq_routing *r, unsigned gsi, int *fd)
{
    *fd = -1;
    if (gsi >= IRQ_ROUTING_IRQCHIP_GSIS)
        return -EINVAL;
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        return -errno;
    int ret = irqfd(r, efd, gsi, -1);
    if (ret < 0) {
        close(efd);
        return ret;
    }
    *fd = efd;
    return 0;
}
