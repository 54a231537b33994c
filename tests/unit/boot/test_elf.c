/* test_elf.c: ELF64 loading (plain long-mode entry and PVH) on synthesized images. */
#include <asm/bootparam.h>
#include <check.h>
#include <elf.h>
#include <errno.h>
#include <stddef.h>
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
#define LOAD_ADDR 0x200000ULL
#define TEXT_LEN 0x1000
#define BSS_LEN 0x2000
#define PVH_ENTRY (LOAD_ADDR + 0x40)

/* A tiny kernel: header, a PT_LOAD and a PT_NOTE, the Xen note, one page of text. */
struct test_elf {
    Elf64_Ehdr eh;
    Elf64_Phdr ph[2];
    struct {
        Elf64_Nhdr nh;
        char name[4];
        uint64_t desc;
    } note;
    uint8_t pad[0x1000 - sizeof(Elf64_Ehdr) - 2 * sizeof(Elf64_Phdr) - 24];
    uint8_t text[TEXT_LEN];
};

_Static_assert(offsetof(struct test_elf, text) == 0x1000, "text at file offset 0x1000");

/* The hvm_start_info fields the tests read, at their version-1 offsets. */
#define SI_MAGIC 0
#define SI_VERSION 4
#define SI_FLAGS 8
#define SI_NR_MODULES 12
#define SI_MODLIST 16
#define SI_CMDLINE 24
#define SI_RSDP 32
#define SI_MEMMAP 40
#define SI_MEMMAP_ENTRIES 48

/* pvh_desc: 0 no PVH note, else the note's address size (4 or 8). */
static void elf_build(struct test_elf *e, unsigned pvh_desc)
{
    memset(e, 0, sizeof(*e));
    memcpy(e->eh.e_ident, ELFMAG, SELFMAG);
    e->eh.e_ident[EI_CLASS] = ELFCLASS64;
    e->eh.e_ident[EI_DATA] = ELFDATA2LSB;
    e->eh.e_ident[EI_VERSION] = EV_CURRENT;
    e->eh.e_type = ET_EXEC;
    e->eh.e_machine = EM_X86_64;
    e->eh.e_version = EV_CURRENT;
    e->eh.e_entry = LOAD_ADDR + 0x10;
    e->eh.e_phoff = offsetof(struct test_elf, ph);
    e->eh.e_ehsize = sizeof(Elf64_Ehdr);
    e->eh.e_phentsize = sizeof(Elf64_Phdr);
    e->eh.e_phnum = pvh_desc ? 2 : 1;
    e->ph[0] = (Elf64_Phdr){.p_type = PT_LOAD,
                            .p_flags = PF_R | PF_X,
                            .p_offset = offsetof(struct test_elf, text),
                            .p_vaddr = 0xffffffff81000000ULL,
                            .p_paddr = LOAD_ADDR,
                            .p_filesz = TEXT_LEN,
                            .p_memsz = TEXT_LEN + BSS_LEN,
                            .p_align = 0x1000};
    e->ph[1] = (Elf64_Phdr){.p_type = PT_NOTE,
                            .p_offset = offsetof(struct test_elf, note),
                            .p_filesz = sizeof(Elf64_Nhdr) + 4 + pvh_desc,
                            .p_align = 4};
    e->note.nh = (Elf64_Nhdr){.n_namesz = 4, .n_descsz = pvh_desc, .n_type = 18};
    memcpy(e->note.name, "Xen", 4);
    e->note.desc = PVH_ENTRY;
    for (size_t i = 0; i < TEXT_LEN; i++)
        e->text[i] = (uint8_t)(i * 13 + 1);
}

static int elf_load_into(struct guest_mem *gm, const struct test_elf *e, size_t len,
                         size_t initrd_len, const char *cmdline, struct boot_entry *out, char *err)
{
    uint8_t *initrd = initrd_len ? malloc(initrd_len) : NULL;
    for (size_t i = 0; i < initrd_len; i++)
        initrd[i] = (uint8_t)(i + 7);
    int ret =
        load_elf(gm, "test.elf", (const uint8_t *)e, len, initrd, initrd_len, cmdline, out, err);
    free(initrd);
    return ret;
}

static void check_segment(const struct guest_mem *gm, const struct test_elf *e)
{
    const uint8_t *p = gpa_to_host(gm, LOAD_ADDR, TEXT_LEN + BSS_LEN);
    ck_assert_ptr_nonnull(p);
    ck_assert_mem_eq(p, e->text, TEXT_LEN);
    for (size_t i = TEXT_LEN; i < TEXT_LEN + BSS_LEN; i++)
        ck_assert_uint_eq(p[i], 0);
}

START_TEST(test_plain_elf)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, RAM_SIZE), 0);
    /* Dirty the bss first so the test sees it being zeroed. */
    memset(gpa_to_host(&gm, LOAD_ADDR, TEXT_LEN + BSS_LEN), 0xcc, TEXT_LEN + BSS_LEN);
    struct test_elf e;
    elf_build(&e, 0);
    struct boot_entry out;
    char err[KILN_ERRMSG_MAX] = "";
    ck_assert_int_eq(elf_load_into(&gm, &e, sizeof(e), 0, "root=/dev/vda", &out, err), 0);
    check_segment(&gm, &e);
    ck_assert_int_eq(out.mode, BOOT_MODE_LONG64);
    ck_assert_uint_eq(out.entry, LOAD_ADDR + 0x10);
    ck_assert_uint_eq(out.boot_info, LAYOUT_ZERO_PAGE);
    struct boot_params *bp = gpa_to_host(&gm, LAYOUT_ZERO_PAGE, sizeof(*bp));
    ck_assert_uint_eq(bp->hdr.boot_flag, 0xaa55);
    ck_assert_uint_eq(bp->hdr.header, 0x53726448);
    ck_assert_uint_eq(bp->hdr.version, 0x020c);
    ck_assert_uint_eq(bp->hdr.type_of_loader, 0xff);
    ck_assert_uint_eq(bp->hdr.cmd_line_ptr, LAYOUT_CMDLINE);
    ck_assert_str_eq(gpa_to_host(&gm, LAYOUT_CMDLINE, 1), "root=/dev/vda");
    ck_assert_uint_eq(bp->e820_entries, 4);
    ck_assert_uint_eq(bp->hdr.ramdisk_image, 0);
    guest_mem_free(&gm);
}
END_TEST

START_TEST(test_plain_elf_initrd)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, RAM_SIZE), 0);
    struct test_elf e;
    elf_build(&e, 0);
    struct boot_entry out;
    char err[KILN_ERRMSG_MAX] = "";
    ck_assert_int_eq(elf_load_into(&gm, &e, sizeof(e), 12345, "", &out, err), 0);
    struct boot_params *bp = gpa_to_host(&gm, LAYOUT_ZERO_PAGE, sizeof(*bp));
    uint64_t addr = bp->hdr.ramdisk_image;
    ck_assert_uint_eq(bp->hdr.ramdisk_size, 12345);
    ck_assert_uint_eq(addr % 4096, 0);
    ck_assert_uint_ge(addr, LOAD_ADDR + TEXT_LEN + BSS_LEN);
    ck_assert_uint_le(addr + 12345, RAM_SIZE);
    ck_assert_uint_gt(addr + 4096 + 12345, RAM_SIZE);
    const uint8_t *p = gpa_to_host(&gm, addr, 12345);
    for (size_t i = 0; i < 12345; i++)
        ck_assert_uint_eq(p[i], (uint8_t)(i + 7));
    guest_mem_free(&gm);
}
END_TEST

static uint64_t rd64(const struct guest_mem *gm, uint64_t gpa)
{
    uint64_t v;
    ck_assert_int_eq(guest_read(gm, gpa, &v, sizeof(v)), 0);
    return v;
}

static uint32_t rd32(const struct guest_mem *gm, uint64_t gpa)
{
    uint32_t v;
    ck_assert_int_eq(guest_read(gm, gpa, &v, sizeof(v)), 0);
    return v;
}

static void check_memmap(const struct guest_mem *gm)
{
    struct e820_range want[16];
    unsigned n = e820_build(gm, want, 16);
    uint64_t map = rd64(gm, LAYOUT_START_INFO + SI_MEMMAP);
    ck_assert_uint_eq(map, LAYOUT_START_INFO + 56);
    ck_assert_uint_eq(rd32(gm, LAYOUT_START_INFO + SI_MEMMAP_ENTRIES), n);
    for (unsigned i = 0; i < n; i++) {
        ck_assert_uint_eq(rd64(gm, map + 24 * i), want[i].addr);
        ck_assert_uint_eq(rd64(gm, map + 24 * i + 8), want[i].size);
        ck_assert_uint_eq(rd32(gm, map + 24 * i + 16), want[i].type);
        ck_assert_uint_eq(rd32(gm, map + 24 * i + 20), 0);
    }
}

static void check_pvh(unsigned desc, size_t initrd_len)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, RAM_SIZE), 0);
    struct test_elf e;
    elf_build(&e, desc);
    struct boot_entry out;
    char err[KILN_ERRMSG_MAX] = "";
    ck_assert_int_eq(elf_load_into(&gm, &e, sizeof(e), initrd_len, "pvh cmd", &out, err), 0);
    check_segment(&gm, &e);
    ck_assert_int_eq(out.mode, BOOT_MODE_PVH32);
    ck_assert_uint_eq(out.entry, PVH_ENTRY);
    ck_assert_uint_eq(out.boot_info, LAYOUT_START_INFO);
    ck_assert_uint_eq(rd32(&gm, LAYOUT_START_INFO + SI_MAGIC), 0x336ec578);
    ck_assert_uint_eq(rd32(&gm, LAYOUT_START_INFO + SI_VERSION), 1);
    ck_assert_uint_eq(rd32(&gm, LAYOUT_START_INFO + SI_FLAGS), 0);
    ck_assert_uint_eq(rd64(&gm, LAYOUT_START_INFO + SI_CMDLINE), LAYOUT_CMDLINE);
    ck_assert_str_eq(gpa_to_host(&gm, LAYOUT_CMDLINE, 1), "pvh cmd");
    ck_assert_uint_eq(rd64(&gm, LAYOUT_START_INFO + SI_RSDP), 0);
    check_memmap(&gm);
    ck_assert_uint_eq(rd32(&gm, LAYOUT_START_INFO + SI_NR_MODULES), initrd_len ? 1 : 0);
    if (initrd_len) {
        uint64_t mod = rd64(&gm, LAYOUT_START_INFO + SI_MODLIST);
        uint64_t addr = rd64(&gm, mod);
        ck_assert_uint_eq(rd64(&gm, mod + 8), initrd_len);
        ck_assert_uint_eq(rd64(&gm, mod + 16), 0);
        ck_assert_uint_eq(addr % 4096, 0);
        ck_assert_uint_ge(addr, LOAD_ADDR + TEXT_LEN + BSS_LEN);
        ck_assert_uint_le(addr + initrd_len, RAM_SIZE);
        ck_assert_uint_eq(*(uint8_t *)gpa_to_host(&gm, addr + 1, 1), 8);
    }
    guest_mem_free(&gm);
}

START_TEST(test_pvh_note_32)
{
    check_pvh(4, 0);
}
END_TEST

START_TEST(test_pvh_note_64_initrd)
{
    check_pvh(8, 3000);
}
END_TEST

/* Load e and expect the plain long-mode entry: the note must not be taken for PVH. */
static void expect_plain(const struct test_elf *e)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, RAM_SIZE), 0);
    struct boot_entry out;
    char err[KILN_ERRMSG_MAX] = "";
    ck_assert_int_eq(elf_load_into(&gm, e, sizeof(*e), 0, "", &out, err), 0);
    ck_assert_int_eq(out.mode, BOOT_MODE_LONG64);
    ck_assert_uint_eq(out.entry, e->eh.e_entry);
    guest_mem_free(&gm);
}

START_TEST(test_other_notes_are_plain)
{
    struct test_elf e;
    elf_build(&e, 4);
    e.note.nh.n_type = 17; /* some other Xen note */
    expect_plain(&e);
    elf_build(&e, 4);
    memcpy(e.note.name, "Xem", 4); /* type 18 from another vendor */
    expect_plain(&e);
    elf_build(&e, 4);
    e.note.nh.n_namesz = 2; /* "Xe" */
    expect_plain(&e);
}
END_TEST

/* Load e (len bytes) and expect errnum with needle in the message. */
static void expect_reject(const struct test_elf *e, size_t len, int errnum, const char *needle)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, RAM_SIZE), 0);
    struct boot_entry out;
    char err[KILN_ERRMSG_MAX] = "";
    ck_assert_int_eq(elf_load_into(&gm, e, len, 0, "", &out, err), -errnum);
    ck_assert_msg(strstr(err, "kernel 'test.elf': ") && strstr(err, needle), "message: %s", err);
    guest_mem_free(&gm);
}

START_TEST(test_reject_header)
{
    struct test_elf e;
    elf_build(&e, 0);
    expect_reject(&e, 40, ENOEXEC, "truncated ELF header");
    e.eh.e_ident[EI_CLASS] = ELFCLASS32;
    expect_reject(&e, sizeof(e), ENOEXEC, "not a 64-bit ELF");
    elf_build(&e, 0);
    e.eh.e_ident[EI_DATA] = ELFDATA2MSB;
    expect_reject(&e, sizeof(e), ENOEXEC, "little-endian");
    elf_build(&e, 0);
    e.eh.e_machine = EM_386;
    expect_reject(&e, sizeof(e), ENOEXEC, "not x86-64");
    elf_build(&e, 0);
    e.eh.e_type = ET_DYN;
    expect_reject(&e, sizeof(e), ENOEXEC, "not an executable");
    elf_build(&e, 0);
    e.eh.e_phentsize = 32;
    expect_reject(&e, sizeof(e), ENOEXEC, "program header size");
}
END_TEST

START_TEST(test_reject_phdr_table)
{
    struct test_elf e;
    elf_build(&e, 0);
    e.eh.e_phoff = sizeof(e);
    expect_reject(&e, sizeof(e), ENOEXEC, "outside the file");
    e.eh.e_phoff = sizeof(e) - 8;
    expect_reject(&e, sizeof(e), ENOEXEC, "outside the file");
    /* phoff + phnum * phentsize wraps around 2^64. */
    e.eh.e_phoff = UINT64_MAX - 100;
    e.eh.e_phnum = 0xfffe;
    expect_reject(&e, sizeof(e), ENOEXEC, "outside the file");
    e.eh.e_phoff = offsetof(struct test_elf, ph);
    e.eh.e_phnum = PN_XNUM;
    expect_reject(&e, sizeof(e), ENOEXEC, "too many");
}
END_TEST

START_TEST(test_reject_segment_file_range)
{
    struct test_elf e;
    elf_build(&e, 0);
    e.ph[0].p_offset = sizeof(e) - 0x10;
    expect_reject(&e, sizeof(e), ENOEXEC, "segment 0");
    e.ph[0].p_offset = UINT64_MAX - 1;
    expect_reject(&e, sizeof(e), ENOEXEC, "lies outside the file");
    elf_build(&e, 0);
    e.ph[0].p_memsz = e.ph[0].p_filesz - 1;
    expect_reject(&e, sizeof(e), ENOEXEC, "file bytes but only");
}
END_TEST

START_TEST(test_reject_segment_memory)
{
    struct test_elf e;
    elf_build(&e, 0);
    e.ph[0].p_paddr = RAM_SIZE - 0x1000;
    expect_reject(&e, sizeof(e), ENOMEM, "outside the VM's RAM");
    e.ph[0].p_paddr = 0xc0000000ULL; /* the PCI hole */
    expect_reject(&e, sizeof(e), ENOMEM, "outside the VM's RAM");
    e.ph[0].p_paddr = UINT64_MAX - 0x10;
    expect_reject(&e, sizeof(e), ENOEXEC, "wraps around");
    e.ph[0].p_paddr = LOAD_ADDR;
    e.ph[0].p_memsz = UINT64_MAX;
    expect_reject(&e, sizeof(e), ENOEXEC, "wraps around");
}
END_TEST

START_TEST(test_reject_entry)
{
    struct test_elf e;
    elf_build(&e, 0);
    e.eh.e_entry = 0x80000000ULL;
    expect_reject(&e, sizeof(e), ENOEXEC, "ELF entry point 0x80000000 is outside guest RAM");
    elf_build(&e, 8);
    e.note.desc = 0x100000000ULL + LOAD_ADDR;
    expect_reject(&e, sizeof(e), ENOEXEC, "PVH entry point");
}
END_TEST

START_TEST(test_reject_no_load)
{
    struct test_elf e;
    elf_build(&e, 4);
    e.ph[0].p_type = PT_NULL;
    expect_reject(&e, sizeof(e), ENOEXEC, "no PT_LOAD");
    e.eh.e_phnum = 0;
    expect_reject(&e, sizeof(e), ENOEXEC, "no PT_LOAD");
}
END_TEST

START_TEST(test_reject_bad_notes)
{
    struct test_elf e;
    elf_build(&e, 4);
    e.note.nh.n_namesz = 0xffffffff;
    expect_reject(&e, sizeof(e), ENOEXEC, "malformed note");
    elf_build(&e, 4);
    e.note.nh.n_descsz = 64; /* runs past the segment */
    expect_reject(&e, sizeof(e), ENOEXEC, "malformed note");
    elf_build(&e, 4);
    e.ph[1].p_filesz = 8; /* shorter than a note header */
    expect_reject(&e, sizeof(e), ENOEXEC, "malformed note");
    elf_build(&e, 4);
    e.ph[1].p_offset = UINT64_MAX - 4;
    expect_reject(&e, sizeof(e), ENOEXEC, "note segment 1 lies outside the file");
    elf_build(&e, 4);
    e.note.nh.n_descsz = 2; /* PVH note with a 2-byte address */
    e.ph[1].p_filesz = sizeof(Elf64_Nhdr) + 4 + 4;
    expect_reject(&e, sizeof(e), ENOEXEC, "malformed note");
}
END_TEST

START_TEST(test_load_kernel_elf_file)
{
    struct test_elf e;
    elf_build(&e, 4);
    char path[64], err[KILN_ERRMSG_MAX] = "";
    fixture_tmpfile(&e, sizeof(e), path);
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, RAM_SIZE), 0);
    struct boot_request req = {.kernel_path = path, .cmdline = "from file"};
    struct boot_entry out;
    ck_assert_int_eq(load_kernel(&gm, &req, &out, err), 0);
    ck_assert_int_eq(out.mode, BOOT_MODE_PVH32);
    ck_assert_uint_eq(out.entry, PVH_ENTRY);
    ck_assert_str_eq(gpa_to_host(&gm, LAYOUT_CMDLINE, 1), "from file");
    guest_mem_free(&gm);
    unlink(path);
}
END_TEST

static Suite *elf_suite(void)
{
    Suite *s = suite_create("elf");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_plain_elf);
    tcase_add_test(tc, test_plain_elf_initrd);
    tcase_add_test(tc, test_pvh_note_32);
    tcase_add_test(tc, test_pvh_note_64_initrd);
    tcase_add_test(tc, test_other_notes_are_plain);
    tcase_add_test(tc, test_reject_header);
    tcase_add_test(tc, test_reject_phdr_table);
    tcase_add_test(tc, test_reject_segment_file_range);
    tcase_add_test(tc, test_reject_segment_memory);
    tcase_add_test(tc, test_reject_entry);
    tcase_add_test(tc, test_reject_no_load);
    tcase_add_test(tc, test_reject_bad_notes);
    tcase_add_test(tc, test_load_kernel_elf_file);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(elf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
