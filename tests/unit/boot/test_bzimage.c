/* test_bzimage.c: bzImage loading on synthesized images, and load_kernel() on files. */
#include <asm/bootparam.h>
#include <check.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"
#include "kiln.h"
#include "platform/layout.h"
#include "boot/e820.h"
#include "boot/loader.h"
#include "memory.h"

#define RAM_SIZE (64 * MIB)
#define HDR(field) (0x1f1 + offsetof(struct setup_header, field))

/* The knobs of a synthesized bzImage. */
struct bz_spec {
    uint8_t setup_sects;
    uint16_t version;
    uint16_t xloadflags;
    uint32_t init_size;
    uint32_t cmdline_size;
    uint32_t initrd_addr_max;
    uint8_t relocatable;
    uint32_t kernel_alignment;
    uint64_t pref_address;
    size_t payload;
};

/* Where the default kernel decompresses: pref_address, already 2 MiB aligned. */
#define RUNTIME_START (16 * MIB)

static struct bz_spec bz_default(void)
{
    return (struct bz_spec){.setup_sects = 4,
                            .version = 0x020f,
                            .xloadflags = XLF_KERNEL_64,
                            .init_size = 4 * MIB,
                            .cmdline_size = 2047,
                            .initrd_addr_max = 0x7fffffff,
                            .relocatable = 1,
                            .kernel_alignment = 2 * MIB,
                            .pref_address = RUNTIME_START,
                            .payload = 8192};
}

static void put16(uint8_t *p, size_t off, uint16_t v)
{
    memcpy(p + off, &v, sizeof(v));
}

static void put32(uint8_t *p, size_t off, uint32_t v)
{
    memcpy(p + off, &v, sizeof(v));
}

static uint8_t payload_byte(size_t i)
{
    return (uint8_t)(i * 7 + 3);
}

static size_t bz_setup_size(const struct bz_spec *s)
{
    return ((s->setup_sects ? s->setup_sects : 4) + 1) * 512u;
}

/* A boot sector and setup header followed by a patterned "kernel"; caller frees. */
static uint8_t *bz_build(const struct bz_spec *s, size_t *len)
{
    size_t setup = bz_setup_size(s);
    *len = setup + s->payload;
    uint8_t *img = calloc(1, *len);
    ck_assert_ptr_nonnull(img);
    img[HDR(setup_sects)] = s->setup_sects;
    put16(img, HDR(boot_flag), 0xaa55);
    img[0x200] = 0xeb;                                        /* jmp short */
    img[0x201] = 0x1f1 + sizeof(struct setup_header) - 0x202; /* header end */
    memcpy(img + HDR(header), "HdrS", 4);
    put16(img, HDR(version), s->version);
    img[HDR(loadflags)] = LOADED_HIGH;
    put32(img, HDR(initrd_addr_max), s->initrd_addr_max);
    put16(img, HDR(xloadflags), s->xloadflags);
    put32(img, HDR(cmdline_size), s->cmdline_size);
    put32(img, HDR(init_size), s->init_size);
    img[HDR(relocatable_kernel)] = s->relocatable;
    put32(img, HDR(kernel_alignment), s->kernel_alignment);
    memcpy(img + HDR(pref_address), &s->pref_address, sizeof(s->pref_address));
    put32(img, HDR(code32_start), 0x100000);
    for (size_t i = 0; i < s->payload; i++)
        img[setup + i] = payload_byte(i);
    return img;
}

static struct boot_params *zero_page(const struct guest_mem *gm)
{
    struct boot_params *bp = gpa_to_host(gm, LAYOUT_ZERO_PAGE, sizeof(*bp));
    ck_assert_ptr_nonnull(bp);
    return bp;
}

static void check_e820(const struct guest_mem *gm, const struct boot_params *bp)
{
    struct e820_range want[16];
    unsigned n = e820_build(gm, want, 16);
    ck_assert_uint_eq(bp->e820_entries, n);
    for (unsigned i = 0; i < n; i++) {
        struct boot_e820_entry e;
        memcpy(&e, &bp->e820_table[i], sizeof(e));
        ck_assert_uint_eq(e.addr, want[i].addr);
        ck_assert_uint_eq(e.size, want[i].size);
        ck_assert_uint_eq(e.type, want[i].type);
    }
}

/* Load spec with cmdline and an initrd of initrd_len bytes (0: none); returns load_bzimage(). */
static int bz_load(struct guest_mem *gm, const struct bz_spec *s, const char *cmdline,
                   size_t initrd_len, struct boot_entry *out, char *err)
{
    size_t len;
    uint8_t *img = bz_build(s, &len);
    uint8_t *initrd = initrd_len ? malloc(initrd_len) : NULL;
    for (size_t i = 0; i < initrd_len; i++)
        initrd[i] = (uint8_t)(i ^ 0x5a);
    int ret = load_bzimage(gm, "test-bz", img, len, initrd, initrd_len, cmdline, out, err);
    free(initrd);
    free(img);
    return ret;
}

START_TEST(test_loads_kernel_and_zero_page)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, RAM_SIZE), 0);
    struct bz_spec s = bz_default();
    struct boot_entry out;
    char err[KILN_ERRMSG_MAX] = "";
    ck_assert_int_eq(bz_load(&gm, &s, "console=ttyS0 quiet", 0, &out, err), 0);
    ck_assert_int_eq(out.mode, BOOT_MODE_LONG64);
    ck_assert_uint_eq(out.entry, LAYOUT_KERNEL_START + 0x200);
    ck_assert_uint_eq(out.boot_info, LAYOUT_ZERO_PAGE);
    const uint8_t *k = gpa_to_host(&gm, LAYOUT_KERNEL_START, s.payload);
    for (size_t i = 0; i < s.payload; i++)
        ck_assert_uint_eq(k[i], payload_byte(i));
    struct boot_params *bp = zero_page(&gm);
    ck_assert_uint_eq(bp->hdr.header, 0x53726448);
    ck_assert_uint_eq(bp->hdr.version, 0x020f);
    ck_assert_uint_eq(bp->hdr.type_of_loader, 0xff);
    ck_assert_uint_eq(bp->hdr.loadflags & (LOADED_HIGH | CAN_USE_HEAP), LOADED_HIGH | CAN_USE_HEAP);
    ck_assert_uint_eq(bp->hdr.heap_end_ptr, 0xfe00 - 0x200);
    ck_assert_uint_eq(bp->hdr.cmd_line_ptr, LAYOUT_CMDLINE);
    ck_assert_uint_eq(bp->ext_cmd_line_ptr, 0);
    ck_assert_str_eq(gpa_to_host(&gm, LAYOUT_CMDLINE, 1), "console=ttyS0 quiet");
    ck_assert_uint_eq(bp->hdr.ramdisk_image, 0);
    ck_assert_uint_eq(bp->hdr.ramdisk_size, 0);
    check_e820(&gm, bp);
    ck_assert_uint_eq(bp->e820_entries, 4);
    guest_mem_free(&gm);
}
END_TEST

static void check_initrd(const struct guest_mem *gm, const struct boot_params *bp, size_t len,
                         uint64_t floor, uint64_t ceiling)
{
    uint64_t addr = bp->hdr.ramdisk_image;
    ck_assert_uint_eq(bp->hdr.ramdisk_size, len);
    ck_assert_uint_eq(bp->ext_ramdisk_image, 0);
    ck_assert_uint_eq(bp->ext_ramdisk_size, 0);
    ck_assert_uint_eq(addr % 4096, 0);
    ck_assert_uint_ge(addr, floor);
    ck_assert_uint_le(addr + len, ceiling);
    /* As high as possible: one more page up would cross the ceiling. */
    ck_assert_uint_gt(addr + 4096 + len, ceiling);
    const uint8_t *p = gpa_to_host(gm, addr, len);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < len; i++)
        ck_assert_uint_eq(p[i], (uint8_t)(i ^ 0x5a));
}

START_TEST(test_initrd_top_of_ram)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, RAM_SIZE), 0);
    struct bz_spec s = bz_default();
    struct boot_entry out;
    char err[KILN_ERRMSG_MAX] = "";
    ck_assert_int_eq(bz_load(&gm, &s, "", 100001, &out, err), 0);
    check_initrd(&gm, zero_page(&gm), 100001, RUNTIME_START + s.init_size, RAM_SIZE);
    guest_mem_free(&gm);
}
END_TEST

START_TEST(test_initrd_below_addr_max)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, RAM_SIZE), 0);
    struct bz_spec s = bz_default();
    s.initrd_addr_max = 32 * MIB - 1;
    struct boot_entry out;
    char err[KILN_ERRMSG_MAX] = "";
    ck_assert_int_eq(bz_load(&gm, &s, "", 5000, &out, err), 0);
    check_initrd(&gm, zero_page(&gm), 5000, RUNTIME_START + s.init_size, 32 * MIB);
    guest_mem_free(&gm);
}
END_TEST

START_TEST(test_initrd_too_big)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, RAM_SIZE), 0);
    struct bz_spec s = bz_default();
    struct boot_entry out;
    char err[KILN_ERRMSG_MAX] = "";
    /* 64 MiB of RAM, kernel up to 20 MiB: 60 MiB of initrd cannot fit above it. */
    ck_assert_int_eq(bz_load(&gm, &s, "", 60 * MIB, &out, err), -ENOMEM);
    ck_assert_ptr_nonnull(strstr(err, "initrd"));
    ck_assert_ptr_nonnull(strstr(err, "do not fit below"));
    guest_mem_free(&gm);
}
END_TEST

START_TEST(test_setup_sects_zero_means_four)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, RAM_SIZE), 0);
    struct bz_spec s = bz_default();
    s.setup_sects = 0;
    struct boot_entry out;
    char err[KILN_ERRMSG_MAX] = "";
    ck_assert_int_eq(bz_load(&gm, &s, "", 0, &out, err), 0);
    const uint8_t *k = gpa_to_host(&gm, LAYOUT_KERNEL_START, 16);
    for (size_t i = 0; i < 16; i++)
        ck_assert_uint_eq(k[i], payload_byte(i));
    guest_mem_free(&gm);
}
END_TEST

/* Load spec into a VM of ram bytes; returns load_bzimage() with the message in err. */
static int bz_load_ram(uint64_t ram, const struct bz_spec *s, size_t initrd_len, char *err)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, ram), 0);
    struct boot_entry out;
    int ret = bz_load(&gm, s, "", initrd_len, &out, err);
    guest_mem_free(&gm);
    return ret;
}

/* init_size counts from the runtime start (pref_address, kernel_alignment), not from 1 MiB. */
START_TEST(test_runtime_start)
{
    char err[KILN_ERRMSG_MAX] = "";
    struct bz_spec s = bz_default();
    s.init_size = 12 * MIB;
    ck_assert_int_eq(bz_load_ram(16 * MIB, &s, 0, err), -ENOMEM);
    ck_assert_ptr_nonnull(strstr(err, "needs 28 MiB of RAM to load, the VM has 16 MiB"));
    s.relocatable = 0; /* a fixed kernel runs at pref_address too */
    ck_assert_int_eq(bz_load_ram(16 * MIB, &s, 0, err), -ENOMEM);
    s.relocatable = 1;
    s.pref_address = 0; /* 1 MiB aligned up to 2 MiB: ends at 14 MiB */
    ck_assert_int_eq(bz_load_ram(16 * MIB, &s, 0, err), 0);
    s.kernel_alignment = 4 * MIB; /* ends exactly at 16 MiB */
    ck_assert_int_eq(bz_load_ram(16 * MIB, &s, 0, err), 0);
    s.kernel_alignment = 8 * MIB;
    ck_assert_int_eq(bz_load_ram(16 * MIB, &s, 0, err), -ENOMEM);
    ck_assert_ptr_nonnull(strstr(err, "needs 20 MiB"));
    s.kernel_alignment = 3 * MIB; /* not a power of two: no alignment */
    ck_assert_int_eq(bz_load_ram(16 * MIB, &s, 0, err), 0);
}
END_TEST

/* The initrd stays above the decompression area, which ends at 20 MiB by default. */
START_TEST(test_initrd_above_runtime_area)
{
    char err[KILN_ERRMSG_MAX] = "";
    struct bz_spec s = bz_default();
    ck_assert_int_eq(bz_load_ram(32 * MIB, &s, 12 * MIB, err), 0);
    ck_assert_int_eq(bz_load_ram(32 * MIB, &s, 12 * MIB + 1, err), -ENOMEM);
    ck_assert_ptr_nonnull(strstr(err, "above the kernel's end at 0x1400000"));
}
END_TEST

/* Load an image that must fail with errnum and a message containing needle. */
static void expect_reject(const uint8_t *img, size_t len, const char *cmdline, int errnum,
                          const char *needle)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, RAM_SIZE), 0);
    struct boot_entry out;
    char err[KILN_ERRMSG_MAX] = "";
    ck_assert_int_eq(load_bzimage(&gm, "bad-bz", img, len, NULL, 0, cmdline, &out, err), -errnum);
    ck_assert_msg(strstr(err, "bad-bz") && strstr(err, needle), "message: %s", err);
    ck_assert_ptr_null(strchr(err, '\n'));
    guest_mem_free(&gm);
}

static void expect_spec_reject(const struct bz_spec *s, const char *cmdline, int errnum,
                               const char *needle)
{
    size_t len;
    uint8_t *img = bz_build(s, &len);
    expect_reject(img, len, cmdline, errnum, needle);
    free(img);
}

START_TEST(test_reject_too_short)
{
    struct bz_spec s = bz_default();
    size_t len;
    uint8_t *img = bz_build(&s, &len);
    expect_reject(img, 0x204, "", ENOEXEC, "not a bzImage");
    expect_reject(img, 0, "", ENOEXEC, "not a bzImage");
    /* Magic intact but the file ends inside the setup sectors. */
    expect_reject(img, 0x400, "", ENOEXEC,
                  "truncated bzImage (setup needs 2560 bytes, file has 1024)");
    /* Setup sectors but no kernel after them. */
    expect_reject(img, bz_setup_size(&s), "", ENOEXEC, "truncated");
    free(img);
}
END_TEST

START_TEST(test_reject_bad_magic)
{
    struct bz_spec s = bz_default();
    size_t len;
    uint8_t *img = bz_build(&s, &len);
    img[HDR(header)] = 'X';
    expect_reject(img, len, "", ENOEXEC, "not a bzImage");
    memcpy(img + HDR(header), "HdrS", 4);
    put16(img, HDR(boot_flag), 0x55aa);
    expect_reject(img, len, "", ENOEXEC, "not a bzImage");
    free(img);
}
END_TEST

START_TEST(test_reject_old_protocol)
{
    struct bz_spec s = bz_default();
    s.version = 0x020b;
    expect_spec_reject(&s, "", ENOEXEC, "boot protocol 2.11 is too old");
}
END_TEST

START_TEST(test_reject_no_kernel64)
{
    struct bz_spec s = bz_default();
    s.xloadflags = XLF_CAN_BE_LOADED_ABOVE_4G;
    expect_spec_reject(&s, "", ENOEXEC, "XLF_KERNEL_64");
}
END_TEST

START_TEST(test_reject_setup_beyond_file)
{
    struct bz_spec s = bz_default();
    size_t len;
    uint8_t *img = bz_build(&s, &len);
    img[HDR(setup_sects)] = 200; /* 201 sectors: far past the 10752-byte file */
    expect_reject(img, len, "", ENOEXEC, "setup needs 102912 bytes, file has 10752");
    free(img);
}
END_TEST

START_TEST(test_reject_too_large_for_ram)
{
    struct bz_spec s = bz_default();
    s.init_size = 100 * MIB;
    expect_spec_reject(&s, "", ENOMEM, "needs 116 MiB of RAM to load, the VM has 64 MiB");
    s.init_size = UINT32_MAX;
    expect_spec_reject(&s, "", ENOMEM, "needs 4112 MiB");
    /* The image itself larger than RAM above 1 MiB. */
    s = bz_default();
    s.payload = RAM_SIZE;
    expect_spec_reject(&s, "", ENOMEM, "needs 65 MiB");
    /* A pref_address so high that aligning it wraps. */
    s = bz_default();
    s.pref_address = UINT64_MAX - 0x100;
    expect_spec_reject(&s, "", ENOMEM, "needs");
    s.relocatable = 0;
    expect_spec_reject(&s, "", ENOMEM, "needs");
}
END_TEST

START_TEST(test_cmdline_limits)
{
    struct bz_spec s = bz_default();
    s.cmdline_size = 10;
    expect_spec_reject(&s, "0123456789x", E2BIG, "command line is 11 bytes");
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, RAM_SIZE), 0);
    struct boot_entry out;
    char err[KILN_ERRMSG_MAX] = "";
    ck_assert_int_eq(bz_load(&gm, &s, "0123456789", 0, &out, err), 0);
    ck_assert_str_eq(gpa_to_host(&gm, LAYOUT_CMDLINE, 1), "0123456789");
    /* A kernel claiming a huge cmdline_size is still held to kiln's area. */
    s.cmdline_size = UINT32_MAX;
    char *big = malloc(LAYOUT_CMDLINE_MAX + 1);
    memset(big, 'a', LAYOUT_CMDLINE_MAX);
    big[LAYOUT_CMDLINE_MAX] = '\0';
    ck_assert_int_eq(bz_load(&gm, &s, big, 0, &out, err), -E2BIG);
    big[LAYOUT_CMDLINE_MAX - 1] = '\0';
    ck_assert_int_eq(bz_load(&gm, &s, big, 0, &out, err), 0);
    free(big);
    guest_mem_free(&gm);
}
END_TEST

/* load_kernel() on path; returns its result with the message in err. */
static int load_path(uint64_t ram, const char *kernel, const char *initrd, char *err)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, ram), 0);
    struct boot_request req = {.kernel_path = kernel, .initrd_path = initrd, .cmdline = "x"};
    struct boot_entry out;
    int ret = load_kernel(&gm, &req, &out, err);
    guest_mem_free(&gm);
    return ret;
}

START_TEST(test_file_errors)
{
    char err[KILN_ERRMSG_MAX], path[64], msg[160];
    fixture_tmpfile("", 0, path);
    ck_assert_int_eq(load_path(RAM_SIZE, path, NULL, err), -ENOEXEC);
    snprintf(msg, sizeof(msg), "kernel '%s': empty file", path);
    ck_assert_str_eq(err, msg);
    unlink(path);

    ck_assert_int_eq(load_path(RAM_SIZE, "/", NULL, err), -EISDIR);
    ck_assert_str_eq(err, "kernel '/': is a directory");

    ck_assert_int_eq(load_path(RAM_SIZE, "/nonexistent/kiln/vmlinuz", NULL, err), -ENOENT);
    ck_assert_str_eq(err, "kernel '/nonexistent/kiln/vmlinuz': no such file");

    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(rand() & 0xff);
    junk[0] = 0; /* never an ELF magic by accident */
    fixture_tmpfile(junk, sizeof(junk), path);
    ck_assert_int_eq(load_path(RAM_SIZE, path, NULL, err), -ENOEXEC);
    snprintf(msg, sizeof(msg), "kernel '%s': not a bzImage or ELF64 image", path);
    ck_assert_str_eq(err, msg);
    unlink(path);

    /* Bigger than the VM's RAM: refused before anything is read into memory. */
    size_t big_len = MIB + 4096;
    uint8_t *big = calloc(1, big_len);
    fixture_tmpfile(big, big_len, path);
    ck_assert_int_eq(load_path(MIB, path, NULL, err), -EFBIG);
    snprintf(msg, sizeof(msg), "kernel '%s': file is larger than the VM's 1 MiB of RAM", path);
    ck_assert_str_eq(err, msg);
    unlink(path);
    free(big);
}
END_TEST

START_TEST(test_file_bzimage_with_initrd)
{
    struct bz_spec s = bz_default();
    size_t len;
    uint8_t *img = bz_build(&s, &len);
    char kpath[64], ipath[64], err[KILN_ERRMSG_MAX] = "";
    fixture_tmpfile(img, len, kpath);
    fixture_tmpfile("initrd-bytes", 12, ipath);
    ck_assert_int_eq(load_path(RAM_SIZE, kpath, ipath, err), 0);
    ck_assert_int_eq(load_path(RAM_SIZE, kpath, "/nonexistent/initrd", err), -ENOENT);
    ck_assert_str_eq(err, "initrd '/nonexistent/initrd': no such file");
    unlink(ipath);
    fixture_tmpfile("", 0, ipath);
    ck_assert_int_eq(load_path(RAM_SIZE, kpath, ipath, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "empty file"));
    unlink(ipath);
    unlink(kpath);
    free(img);
}
END_TEST

static Suite *bzimage_suite(void)
{
    Suite *s = suite_create("bzimage");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_loads_kernel_and_zero_page);
    tcase_add_test(tc, test_initrd_top_of_ram);
    tcase_add_test(tc, test_initrd_below_addr_max);
    tcase_add_test(tc, test_initrd_too_big);
    tcase_add_test(tc, test_setup_sects_zero_means_four);
    tcase_add_test(tc, test_runtime_start);
    tcase_add_test(tc, test_initrd_above_runtime_area);
    tcase_add_test(tc, test_reject_too_short);
    tcase_add_test(tc, test_reject_bad_magic);
    tcase_add_test(tc, test_reject_old_protocol);
    tcase_add_test(tc, test_reject_no_kernel64);
    tcase_add_test(tc, test_reject_setup_beyond_file);
    tcase_add_test(tc, test_reject_too_large_for_ram);
    tcase_add_test(tc, test_cmdline_limits);
    tcase_add_test(tc, test_file_errors);
    tcase_add_test(tc, test_file_bzimage_with_initrd);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(bzimage_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
