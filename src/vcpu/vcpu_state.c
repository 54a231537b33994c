/* vcpu_state.c: a vCPU's whole KVM state for snapshots: registers, FPU, MSRs, LAPIC, events. */
#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "state.h"
#include "vcpu/vcpu.h"

#define MAX_MSRS 1024

/* The MSRs KVM saves and restores for this host, from the system fd. */
static int msr_list(int kvm_fd, struct kvm_msr_list **out)
{
    struct kvm_msr_list *l = calloc(1, sizeof(*l) + MAX_MSRS * sizeof(uint32_t));
    if (!l)
        return -ENOMEM;
    l->nmsrs = MAX_MSRS;
    if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
        int err = errno;
        free(l);
        return -err;
    }
    *out = l;
    return 0;
}

/*
 * Every MSR of the list that this vCPU can read, as (index, value) pairs after their count.
 * KVM_GET_MSRS stops at the first it cannot read, so the rest are asked again after it.
 */
static int save_msrs(const struct vcpu *v, struct device_state *st)
{
    struct kvm_msr_list *l = NULL;
    int ret = msr_list(v->set->host.kvm_fd, &l);
    if (ret < 0)
        return ret;
    struct kvm_msrs *req = calloc(1, sizeof(*req) + l->nmsrs * sizeof(struct kvm_msr_entry));
    struct kvm_msr_entry *out = calloc(l->nmsrs + 1, sizeof(*out));
    uint32_t n = 0;
    for (uint32_t i = 0; req && out && i < l->nmsrs;) {
        req->nmsrs = l->nmsrs - i;
        for (uint32_t k = 0; k < req->nmsrs; k++)
            req->entries[k] = (struct kvm_msr_entry){.index = l->indices[i + k]};
        int got = ioctl(v->fd, KVM_GET_MSRS, req);
        if (got < 0) {
            ret = -errno;
            break;
        }
        memcpy(out + n, req->entries, (size_t)got * sizeof(*out));
        n += (uint32_t)got;
        /* Past the one it could not read, if it stopped early. */
        i += (uint32_t)got + ((uint32_t)got < req->nmsrs);
    }
    if (!req || !out)
        ret = -ENOMEM;
    if (ret == 0) {
        state_put_u32(st, n);
        state_put(st, out, n * sizeof(*out));
    }
    free(out);
    free(req);
    free(l);
    return ret;
}

static int restore_msrs(struct vcpu *v, struct device_state *st)
{
    uint32_t n = state_get_u32(st);
    if (st->err || n > MAX_MSRS)
        return -EINVAL;
    struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(struct kvm_msr_entry));
    if (!m)
        return -ENOMEM;
    m->nmsrs = n;
    state_get(st, m->entries, n * sizeof(struct kvm_msr_entry));
    int got = st->err ? -1 : ioctl(v->fd, KVM_SET_MSRS, m);
    int ret = st->err ? -st->err : got < 0 ? -errno : (uint32_t)got == n ? 0 : -EINVAL;
    free(m);
    return ret;
}

/* The FPU and extended state: KVM_GET_XSAVE2 sizes it (4096 bytes, or more with AMX). */
static size_t xsave_size(const struct vcpu *v)
{
    int n = ioctl(v->set->host.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
    return n > (int)sizeof(struct kvm_xsave) ? (size_t)n : sizeof(struct kvm_xsave);
}

static int save_xsave(const struct vcpu *v, struct device_state *st)
{
    size_t size = xsave_size(v);
    void *x = calloc(1, size);
    if (!x)
        return -ENOMEM;
    unsigned long req = size > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
    int ret = ioctl(v->fd, req, x) < 0 ? -errno : 0;
    if (ret == 0) {
        state_put_u64(st, size);
        state_put(st, x, size);
    }
    free(x);
    return ret;
}

static int restore_xsave(struct vcpu *v, struct device_state *st)
{
    uint64_t size = state_get_u64(st);
    if (st->err || size != xsave_size(v))
        return -EINVAL; /* another CPU's state layout */
    void *x = malloc(size);
    if (!x)
        return -ENOMEM;
    state_get(st, x, size);
    int ret = st->err ? -st->err : ioctl(v->fd, KVM_SET_XSAVE, x) < 0 ? -errno : 0;
    free(x);
    return ret;
}

/* The fixed-size parts, in the order they are saved and restored. */
static const struct {
    unsigned long get, set;
    size_t size;
} fixed[] = {
    {KVM_GET_MP_STATE, KVM_SET_MP_STATE, sizeof(struct kvm_mp_state)},
    {KVM_GET_REGS, KVM_SET_REGS, sizeof(struct kvm_regs)},
    {KVM_GET_SREGS, KVM_SET_SREGS, sizeof(struct kvm_sregs)},
    {KVM_GET_XCRS, KVM_SET_XCRS, sizeof(struct kvm_xcrs)},
    {KVM_GET_LAPIC, KVM_SET_LAPIC, sizeof(struct kvm_lapic_state)},
    {KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS, sizeof(struct kvm_debugregs)},
};

int vcpu_save(const struct vcpu *v, struct device_state *st)
{
    uint8_t buf[sizeof(struct kvm_lapic_state) + sizeof(struct kvm_sregs)];
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        memset(buf, 0, fixed[i].size);
        if (ioctl(v->fd, fixed[i].get, buf) < 0)
            return -errno;
        state_put(st, buf, fixed[i].size);
    }
    int ret = save_xsave(v, st);
    if (ret == 0)
        ret = save_msrs(v, st);
    /* Pending exceptions and interrupts last: reading the rest must not change them. */
    struct kvm_vcpu_events ev;
    if (ret == 0 && ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
        ret = -errno;
    if (ret == 0)
        state_put(st, &ev, sizeof(ev));
    return ret < 0 ? ret : st->err ? -st->err : 0;
}

int vcpu_restore(struct vcpu *v, struct device_state *st)
{
    uint8_t buf[sizeof(struct kvm_lapic_state) + sizeof(struct kvm_sregs)];
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        state_get(st, buf, fixed[i].size);
        if (st->err)
            return -EINVAL;
        if (ioctl(v->fd, fixed[i].set, buf) < 0)
            return -errno;
    }
    int ret = restore_xsave(v, st);
    if (ret == 0)
        ret = restore_msrs(v, st);
    struct kvm_vcpu_events ev;
    state_get(st, &ev, sizeof(ev));
    if (ret == 0 && st->err)
        ret = -EINVAL;
    if (ret == 0) {
        /* Set the NMI and SIPI fields too, as they were. */
        ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
        if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
            ret = -errno;
    }
    return ret;
}
