/* test_fw_cfg.c: fw_cfg through its device interface: ports, file directory, DMA, hostile DMA. */
#include <check.h>
#include <string.h>

#include "devices/fw_cfg.h"
#include "state.h"

#define RAM (16u << 20)

enum { PORTS, DMA }; /* the device's regions: 0x510-0x511 and 0x514-0x51b */

static struct guest_mem gm;
static struct fw_cfg *fc;
static struct device *dev;
static unsigned warnings;

static void count_log(void *ctx, enum kiln_log_level level, const char *msg)
{
    (void)ctx;
    (void)msg;
    warnings += level <= KILN_LOG_WARN;
}

static const struct kiln_log test_log = {count_log, NULL, KILN_LOG_DEBUG};

static void setup(void)
{
    ck_assert_int_eq(guest_mem_init(&gm, RAM), 0);
    ck_assert_int_eq(fw_cfg_create(&gm, &test_log, &fc), 0);
    dev = fw_cfg_device(fc);
    warnings = 0;
}

static void teardown(void)
{
    dev->ops->destroy(dev);
    guest_mem_free(&gm);
}

static void select_key(uint16_t key)
{
    uint8_t v[2] = {(uint8_t)key, (uint8_t)(key >> 8)};
    dev->ops->write(dev, PORTS, 0, v, 2);
}

static void read_data(void *buf, uint32_t len)
{
    uint8_t *p = buf;
    for (uint32_t i = 0; i < len; i++)
        dev->ops->read(dev, PORTS, 1, p + i, 1);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Write a DMA request at gpa req and start it as firmware does (high half, then low half). */
static uint32_t dma(uint64_t req, uint32_t control, uint32_t len, uint64_t buf)
{
    uint8_t r[16];
    put_be32(r, control);
    put_be32(r + 4, len);
    put_be32(r + 8, (uint32_t)(buf >> 32));
    put_be32(r + 12, (uint32_t)buf);
    if (gpa_to_host(&gm, req, 16))
        ck_assert_int_eq(guest_write(&gm, req, r, 16), 0);
    uint8_t hi[4], lo[4];
    put_be32(hi, (uint32_t)(req >> 32));
    put_be32(lo, (uint32_t)req);
    dev->ops->write(dev, DMA, 0, hi, 4);
    dev->ops->write(dev, DMA, 4, lo, 4);
    if (!gpa_to_host(&gm, req, 16))
        return 0xdeadbeef;
    ck_assert_int_eq(guest_read(&gm, req, r, 16), 0);
    return be32(r);
}

START_TEST(test_signature_and_id)
{
    ck_assert_uint_eq(dev->nranges, 2);
    ck_assert_uint_eq(dev->ranges[PORTS].base, 0x510);
    ck_assert_uint_eq(dev->ranges[DMA].base, 0x514);
    char sig[5] = "";
    select_key(FW_CFG_SIGNATURE);
    read_data(sig, 4);
    ck_assert_str_eq(sig, "QEMU");
    uint8_t id[4];
    select_key(FW_CFG_ID);
    read_data(id, 4);
    ck_assert_uint_eq(id[0], 3); /* traditional and DMA */
    uint8_t dsig[8];
    dev->ops->read(dev, DMA, 0, dsig, 4);
    dev->ops->read(dev, DMA, 4, dsig + 4, 4);
    ck_assert_int_eq(memcmp(dsig, "QEMU CFG", 8), 0);
}
END_TEST

START_TEST(test_items_and_files)
{
    const uint8_t ram[8] = {0, 0, 0, 0x10, 0, 0, 0, 0};
    ck_assert_int_eq(fw_cfg_set(fc, FW_CFG_RAM_SIZE, ram, sizeof(ram)), 0);
    ck_assert_int_eq(fw_cfg_add_file(fc, "etc/one", "abc", 3), 0);
    ck_assert_int_eq(fw_cfg_add_file(fc, "etc/two", "hello", 5), 0);
    uint8_t got[16];
    select_key(FW_CFG_RAM_SIZE);
    read_data(got, 8);
    ck_assert_int_eq(memcmp(got, ram, 8), 0);
    /* The directory: a count, then size, selector and name of each file. */
    uint8_t dir[4 + 2 * 64];
    select_key(FW_CFG_FILE_DIR);
    read_data(dir, sizeof(dir));
    ck_assert_uint_eq(be32(dir), 2);
    ck_assert_uint_eq(be32(dir + 4 + 64), 5);
    uint16_t sel = (uint16_t)(dir[4 + 64 + 4] << 8 | dir[4 + 64 + 5]);
    ck_assert_str_eq((const char *)dir + 4 + 64 + 8, "etc/two");
    select_key(sel);
    read_data(got, 8); /* past the end: zeros */
    ck_assert_int_eq(memcmp(got, "hello\0\0\0", 8), 0);
    /* Unknown keys read as empty; selecting restarts at offset 0. */
    select_key(0x7fff);
    read_data(got, 2);
    ck_assert_uint_eq(got[0] | got[1], 0);
    /* Architecture-local keys are a namespace of their own, empty in kiln: x86's legacy ACPI
     * table count (0x8000) is 0, not key 0's "QEMU" read as a count of 17745; and with the
     * write-channel bit too, or on a file's number. The write bit alone still names the item. */
    const uint16_t arch[] = {0x8000, 0x8001, 0x8003, 0xc000, 0x8000 | sel};
    for (size_t i = 0; i < sizeof(arch) / sizeof(arch[0]); i++) {
        select_key(arch[i]);
        read_data(got, 4);
        ck_assert_msg((got[0] | got[1] | got[2] | got[3]) == 0, "key 0x%x is not empty", arch[i]);
    }
    select_key(0x4000 | sel);
    read_data(got, 5);
    ck_assert_int_eq(memcmp(got, "hello", 5), 0);
}
END_TEST

START_TEST(test_file_errors)
{
    char name[80];
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    ck_assert_int_eq(fw_cfg_add_file(fc, name, "x", 1), -ENAMETOOLONG);
    ck_assert_int_eq(fw_cfg_add_file(fc, "", "x", 1), -ENAMETOOLONG);
    ck_assert_int_eq(fw_cfg_add_file(fc, "dup", "x", 1), 0);
    ck_assert_int_eq(fw_cfg_add_file(fc, "dup", "y", 1), -EEXIST);
    for (int i = 1; i < FW_CFG_MAX_FILES; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        ck_assert_int_eq(fw_cfg_add_file(fc, name, "x", 1), 0);
    }
    ck_assert_int_eq(fw_cfg_add_file(fc, "one-too-many", "x", 1), -ENOSPC);
    ck_assert_int_eq(fw_cfg_set(fc, FW_CFG_FILE_DIR, "x", 1), -EINVAL);
    ck_assert_int_eq(fw_cfg_set(fc, FW_CFG_FILE_FIRST, "x", 1), -EINVAL);
}
END_TEST

START_TEST(test_dma_read_and_skip)
{
    uint8_t blob[300];
    for (unsigned i = 0; i < sizeof(blob); i++)
        blob[i] = (uint8_t)(i * 7);
    ck_assert_int_eq(fw_cfg_add_file(fc, "etc/blob", blob, sizeof(blob)), 0);
    const uint16_t key = FW_CFG_FILE_FIRST;
    uint8_t got[400];
    memset(got, 0xee, sizeof(got));
    ck_assert_int_eq(guest_write(&gm, 0x20000, got, sizeof(got)), 0);
    uint32_t ctl = (uint32_t)key << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ;
    ck_assert_uint_eq(dma(0x1000, ctl, 100, 0x20000), 0);
    ck_assert_uint_eq(dma(0x1000, FW_CFG_DMA_SKIP, 100, 0), 0);
    ck_assert_uint_eq(dma(0x1000, FW_CFG_DMA_READ, 200, 0x20000 + 100), 0); /* 100 past end */
    ck_assert_int_eq(guest_read(&gm, 0x20000, got, sizeof(got)), 0);
    ck_assert_int_eq(memcmp(got, blob, 100), 0);
    ck_assert_int_eq(memcmp(got + 100, blob + 200, 100), 0);
    for (unsigned i = 200; i < 300; i++)
        ck_assert_uint_eq(got[i], 0);
    ck_assert_uint_eq(got[300], 0xee); /* nothing beyond the request */
    /* The port read position follows DMA: nothing is left to read. */
    uint8_t b = 0xaa;
    read_data(&b, 1);
    ck_assert_uint_eq(b, 0);
    ck_assert_uint_eq(warnings, 0);
}
END_TEST

/* Every address the guest gives is checked: no access outside RAM, an error bit instead. */
START_TEST(test_dma_hostile)
{
    ck_assert_int_eq(fw_cfg_add_file(fc, "etc/blob", "0123456789", 10), 0);
    uint32_t rd = (uint32_t)FW_CFG_FILE_FIRST << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ;
    ck_assert_uint_eq(dma(0x1000, rd, 10, RAM), FW_CFG_DMA_ERROR);           /* buffer past RAM */
    ck_assert_uint_eq(dma(0x1000, rd, 16, RAM - 8), FW_CFG_DMA_ERROR);       /* straddles the end */
    ck_assert_uint_eq(dma(0x1000, rd, 0xffffffffu, 0), FW_CFG_DMA_ERROR);    /* longer than RAM */
    ck_assert_uint_eq(dma(0x1000, rd, 8, UINT64_MAX - 3), FW_CFG_DMA_ERROR); /* wraps */
    ck_assert_uint_eq(dma(0x1000, FW_CFG_DMA_WRITE, 4, 0x2000), FW_CFG_DMA_ERROR);
    ck_assert_uint_eq(dma(RAM - 8, rd, 4, 0x2000), 0xdeadbeef); /* request itself outside */
    ck_assert_uint_eq(dma(UINT64_MAX - 7, rd, 4, 0x2000), 0xdeadbeef);
    /* A skip that would overflow the offset stops at the end of the offset range. */
    ck_assert_uint_eq(dma(0x1000, FW_CFG_DMA_SKIP, 0xffffffffu, 0), 0);
    ck_assert_uint_eq(dma(0x1000, FW_CFG_DMA_SKIP, 0xffffffffu, 0), 0);
    uint8_t b = 0xaa;
    read_data(&b, 1);
    ck_assert_uint_eq(b, 0);
    ck_assert_uint_ge(warnings, 6);
    /* A zero-length read at any address is fine. */
    ck_assert_uint_eq(dma(0x1000, rd, 0, 0x2000), 0);
}
END_TEST

START_TEST(test_reset)
{
    ck_assert_int_eq(fw_cfg_add_file(fc, "etc/blob", "0123456789", 10), 0);
    select_key(FW_CFG_FILE_FIRST);
    uint8_t b;
    read_data(&b, 1);
    ck_assert_uint_eq(b, '0');
    ck_assert_int_eq(dev->ops->reset(dev), 0);
    char sig[5] = "";
    read_data(sig, 4); /* back on the signature */
    ck_assert_str_eq(sig, "QEMU");
}
END_TEST

/* A second device with the same contents as fc gets, restored from st: 0 or the error. */
static int restore_into(struct fw_cfg **out, const char *blob, const struct device_state *st)
{
    ck_assert_int_eq(fw_cfg_create(&gm, &test_log, out), 0);
    ck_assert_int_eq(fw_cfg_add_file(*out, "etc/blob", blob, (uint32_t)strlen(blob)), 0);
    struct device *d = fw_cfg_device(*out);
    struct device_state r = state_reader(st->buf, st->len);
    int ret = d->ops->restore(d, &r);
    return ret == 0 ? state_done(&r) : ret;
}

/* A guest half-way through a file reads on where it was; the DMA high half stays latched. */
START_TEST(test_save_restore)
{
    ck_assert_int_eq(fw_cfg_add_file(fc, "etc/blob", "0123456789", 10), 0);
    select_key(FW_CFG_FILE_FIRST);
    uint8_t got[4];
    read_data(got, 3);
    uint8_t one[4] = {0, 0, 0, 1};
    dev->ops->write(dev, DMA, 0, one, 4); /* a request's high half: 4 GiB, outside RAM */
    struct device_state st = {0};
    ck_assert_int_eq(dev->ops->save(dev, &st), 0);
    dev->ops->destroy(dev);
    ck_assert_int_eq(restore_into(&fc, "0123456789", &st), 0);
    dev = fw_cfg_device(fc);
    read_data(got, 4);
    ck_assert_int_eq(memcmp(got, "3456", 4), 0);
    /* The low half starts it at 4 GiB + 0x1000, not at 0x1000 (which holds a valid request). */
    uint8_t req[16] = {0, 0, 0, FW_CFG_DMA_READ, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0x20, 0};
    ck_assert_int_eq(guest_write(&gm, 0x1000, req, sizeof(req)), 0);
    uint8_t lo[4] = {0, 0, 0x10, 0};
    dev->ops->write(dev, DMA, 4, lo, 4);
    ck_assert_uint_eq(warnings, 1);
    read_data(got, 1);
    ck_assert_uint_eq(got[0], '7'); /* the DMA read nothing */
    state_free(&st);
}
END_TEST

/* Other contents than the snapshot's (another config), a short or a long state: refused. */
START_TEST(test_restore_refused)
{
    ck_assert_int_eq(fw_cfg_add_file(fc, "etc/blob", "0123456789", 10), 0);
    struct device_state st = {0};
    ck_assert_int_eq(dev->ops->save(dev, &st), 0);
    struct fw_cfg *other;
    ck_assert_int_eq(restore_into(&other, "0123456780", &st), -EINVAL);
    fw_cfg_device(other)->ops->destroy(fw_cfg_device(other));
    st.len--;
    ck_assert_int_eq(restore_into(&other, "0123456789", &st), -EINVAL);
    fw_cfg_device(other)->ops->destroy(fw_cfg_device(other));
    st.len++;
    state_put_u32(&st, 0);
    ck_assert_int_eq(restore_into(&other, "0123456789", &st), -EINVAL);
    fw_cfg_device(other)->ops->destroy(fw_cfg_device(other));
    st.len -= 4;
    st.buf[2] = 1; /* a selector above 16 bits */
    ck_assert_int_eq(restore_into(&other, "0123456789", &st), -EINVAL);
    fw_cfg_device(other)->ops->destroy(fw_cfg_device(other));
    state_free(&st);
}
END_TEST

static Suite *fw_cfg_suite(void)
{
    Suite *s = suite_create("fw_cfg");
    TCase *tc = tcase_create("device");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_signature_and_id);
    tcase_add_test(tc, test_items_and_files);
    tcase_add_test(tc, test_file_errors);
    tcase_add_test(tc, test_dma_read_and_skip);
    tcase_add_test(tc, test_dma_hostile);
    tcase_add_test(tc, test_reset);
    tcase_add_test(tc, test_save_restore);
    tcase_add_test(tc, test_restore_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fw_cfg_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
