/* fuzz_firmware.c: what firmware boot adds for the guest to poke: fw_cfg (ports, DMA), RTC, PM. */
#include "devices/acpi_pm.h"
#include "devices/fw_cfg.h"
#include "devices/rtc.h"
#include "fuzz_common.h"
#include "platform/layout.h"
#include "state.h"

/*
 * Input: 24 bytes of fw_cfg file contents (three files of 8 bytes), then operations, each a
 * kind byte and its arguments:
 *   0 SEL u16          fw_cfg selector write
 *   1 READ u8          that many data-port reads
 *   2 DMA u8 u32 u32 u64 u8   a DMA request: where it sits (u8 picks an offset in RAM, or
 *                      outside it), control, length, buffer address (u8 bit 0: kept within
 *                      RAM's size by masking), then the DMA register writes
 *   3 PORT u8 u8 u32   any access to fw_cfg's two regions: region/offset/width, write/read, value
 *   4 RTC u8 u8        index write (bit 7 of the first: a data write of the second instead)
 *   5 PM u8 u32        any access to the PM registers' four regions
 *   6 SNAP u8 u8 u8    save fw_cfg or the RTC (bit 0 of the first), flip the bits of the second
 *                      in the byte at the third (mod its length; none when the second is 0), and
 *                      restore the device from it
 * The checks: every DMA request in RAM gets its control word back as 0 or the error bit, the
 * RTC's seconds are valid BCD or binary in 0-59, and a restore takes an unchanged state and
 * answers any other with 0 or -EINVAL.
 */

#define RAM_SIZE (64u << 10)

struct fixture {
    struct fz_ram ram;
    struct fw_cfg *fw;
    struct device *fwdev, *rtc, *pm;
    unsigned ends;
};

static void on_end(void *ctx, enum kiln_exit_reason reason, int status, int error, const char *msg)
{
    (void)reason;
    (void)status;
    (void)error;
    (void)msg;
    ((struct fixture *)ctx)->ends++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static void make(struct fixture *x, struct fz *f)
{
    fz_ram_alloc(&x->ram, RAM_SIZE, 0);
    fz_ram_clear(&x->ram);
    if (fw_cfg_create(&x->ram.gm, fz_log(), &x->fw) < 0)
        abort();
    x->fwdev = fw_cfg_device(x->fw);
    const char *names[3] = {"etc/a", "etc/table-loader", "bootorder"};
    for (unsigned i = 0; i < 3; i++) {
        uint8_t data[8];
        fz_take(f, data, sizeof(data));
        if (fw_cfg_add_file(x->fw, names[i], data, 1 + i * 3) < 0)
            abort();
    }
    const struct rtc_config rc = {.ram_below_4g = RAM_SIZE, .cpus = 2};
    const struct end_vm end = {on_end, x};
    if (rtc_create(&rc, &x->rtc) < 0 || acpi_pm_create(&end, true, &x->pm) < 0)
        abort();
}

static void destroy(struct fixture *x)
{
    x->fwdev->ops->destroy(x->fwdev);
    x->rtc->ops->destroy(x->rtc);
    x->pm->ops->destroy(x->pm);
    for (unsigned i = 0; i < x->ram.gm.nregions; i++)
        free(x->ram.block[i]);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void dma(struct fixture *x, struct fz *f)
{
    uint8_t where = fz_u8(f);
    uint32_t control = fz_u32(f), len = fz_u32(f);
    uint64_t buf = fz_u64(f);
    if (fz_u8(f) & 1)
        buf %= RAM_SIZE;
    /* where 0-239: in RAM, 256-byte steps down from the top; else beyond its end. */
    uint64_t req = where < 240 ? RAM_SIZE - 16 - (uint64_t)where * 256 : RAM_SIZE + where;
    uint8_t *r = gpa_to_host(&x->ram.gm, req, 16);
    if (r) {
        put_be32(r, control);
        put_be32(r + 4, len);
        put_be32(r + 8, (uint32_t)(buf >> 32));
        put_be32(r + 12, (uint32_t)buf);
    }
    uint8_t hi[4], lo[4];
    put_be32(hi, (uint32_t)(req >> 32));
    put_be32(lo, (uint32_t)req);
    x->fwdev->ops->write(x->fwdev, 1, 0, hi, 4);
    x->fwdev->ops->write(x->fwdev, 1, 4, lo, 4);
    if (r) {
        uint32_t back = (uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 | (uint32_t)r[2] << 8 | r[3];
        FZ_CHECK(back == 0 || back == FW_CFG_DMA_ERROR);
    }
}

/* One access to region (of nregions) of d: offset and width kept inside the region. */
static void dev_access(struct device *d, struct fz *f)
{
    uint8_t a = fz_u8(f), b = fz_u8(f);
    uint32_t v = fz_u32(f);
    unsigned region = a % d->nranges;
    uint64_t size = d->ranges[region].len;
    uint32_t len = 1u << (b & 3);
    if (len > size)
        len = (uint32_t)size;
    uint64_t off = (b >> 2) % (size - len + 1);
    uint8_t data[8] = {0};
    le_put(data, len, v);
    if (a & 0x80)
        d->ops->write(d, region, off, data, len);
    else
        d->ops->read(d, region, off, data, len);
}

static void rtc_op(struct fixture *x, struct fz *f)
{
    uint8_t a = fz_u8(f), b = fz_u8(f);
    if (a & 0x80) {
        x->rtc->ops->write(x->rtc, 0, 1, &b, 1);
        return;
    }
    x->rtc->ops->write(x->rtc, 0, 0, &a, 1);
    uint8_t v, sel = 0x0b, sec = 0x00;
    x->rtc->ops->read(x->rtc, 0, 1, &v, 1); /* the register just selected */
    x->rtc->ops->write(x->rtc, 0, 0, &sel, 1);
    uint8_t regb;
    x->rtc->ops->read(x->rtc, 0, 1, &regb, 1);
    x->rtc->ops->write(x->rtc, 0, 0, &sec, 1);
    x->rtc->ops->read(x->rtc, 0, 1, &v, 1);
    if (regb & 0x04)
        FZ_CHECK(v < 60);
    else
        FZ_CHECK((v >> 4) < 6 && (v & 0x0f) < 10);
}

/* A device's saved state, perhaps damaged, restored into it. */
static void snap_op(struct fixture *x, struct fz *f)
{
    uint8_t which = fz_u8(f), flip = fz_u8(f), at = fz_u8(f);
    struct device *d = which & 1 ? x->rtc : x->fwdev;
    struct device_state st = {0};
    FZ_CHECK(d->ops->save(d, &st) == 0 && st.len > 0);
    st.buf[at % st.len] ^= flip;
    struct device_state r = state_reader(st.buf, st.len);
    int ret = d->ops->restore(d, &r);
    if (ret == 0)
        ret = state_done(&r);
    FZ_CHECK(ret == 0 || (flip && ret == -EINVAL));
    state_free(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    struct fixture x = {0};
    make(&x, &f);
    while (fz_more(&f)) {
        switch (fz_u8(&f) % 7) {
        case 0: {
            uint8_t sel[2] = {fz_u8(&f), fz_u8(&f)};
            x.fwdev->ops->write(x.fwdev, 0, 0, sel, 2);
            break;
        }
        case 1:
            for (unsigned n = fz_u8(&f); n > 0; n--) {
                uint8_t b;
                x.fwdev->ops->read(x.fwdev, 0, 1, &b, 1);
            }
            break;
        case 2:
            dma(&x, &f);
            break;
        case 3:
            dev_access(x.fwdev, &f);
            break;
        case 4:
            rtc_op(&x, &f);
            break;
        case 5:
            dev_access(x.pm, &f);
            break;
        default:
            snap_op(&x, &f);
            break;
        }
    }
    destroy(&x);
    return 0;
}
