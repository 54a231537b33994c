/* test_vm_firmware.c: the fw_cfg files of a firmware VM, loaded the way SeaBIOS's loader does. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "devices/fw_cfg.h"
#include "platform/acpi.h"
#include "platform/layout.h"
#include "vm.h"

#define RAM (64u << 20)
#define FSEG_BASE 0xf0000ULL   /* where this "firmware" puts FSEG allocations */
#define HIGH_BASE 0x3000000ULL /* and high ones */

struct file {
    char name[56];
    uint16_t key;
    uint32_t size;
    uint8_t *data;
    uint64_t gpa; /* once allocated */
};

static struct kiln_vm *vm;
static struct device *dev;
static struct file files[FW_CFG_MAX_FILES];
static unsigned nfiles;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void read_item(uint16_t key, uint8_t *buf, uint32_t len)
{
    uint8_t sel[2] = {(uint8_t)key, (uint8_t)(key >> 8)};
    dev->ops->write(dev, 0, 0, sel, 2);
    for (uint32_t i = 0; i < len; i++)
        dev->ops->read(dev, 0, 1, buf + i, 1);
}

/* The directory and every file's contents, through the ports. */
static void read_files(void)
{
    uint8_t count[4];
    read_item(FW_CFG_FILE_DIR, count, 4);
    nfiles = be32(count);
    ck_assert_uint_le(nfiles, FW_CFG_MAX_FILES);
    uint8_t dir[4 + FW_CFG_MAX_FILES * 64];
    read_item(FW_CFG_FILE_DIR, dir, 4 + nfiles * 64);
    for (unsigned i = 0; i < nfiles; i++) {
        const uint8_t *e = dir + 4 + i * 64;
        struct file *f = &files[i];
        f->size = be32(e);
        f->key = (uint16_t)(e[4] << 8 | e[5]);
        memcpy(f->name, e + 8, sizeof(f->name));
        f->data = malloc(f->size);
        read_item(f->key, f->data, f->size);
    }
}

static struct file *find(const char *name)
{
    for (unsigned i = 0; i < nfiles; i++)
        if (strncmp(files[i].name, name, sizeof(files[i].name)) == 0)
            return &files[i];
    ck_abort_msg("no fw_cfg file %s", name);
    return NULL;
}

static uint8_t *host(struct file *f)
{
    uint8_t *p = gpa_to_host(&vm->mem, f->gpa, f->size);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* Run etc/table-loader as firmware does: allocate, add pointers, redo checksums. */
static void run_loader(void)
{
    struct file *l = find("etc/table-loader");
    ck_assert_uint_eq(l->size % 128, 0);
    uint64_t fseg = FSEG_BASE, high = HIGH_BASE;
    for (uint32_t off = 0; off < l->size; off += 128) {
        const uint8_t *c = l->data + off;
        uint32_t cmd = c[0] | c[1] << 8 | c[2] << 16 | (uint32_t)c[3] << 24;
        if (cmd == 1) { /* ALLOCATE file align zone */
            struct file *f = find((const char *)c + 4);
            uint32_t align;
            memcpy(&align, c + 60, 4);
            uint64_t *next = c[64] == 2 ? &fseg : &high;
            ck_assert(c[64] == 1 || c[64] == 2);
            f->gpa = align_up(*next, align);
            *next = f->gpa + f->size;
            memcpy(host(f), f->data, f->size);
        } else if (cmd == 2) { /* ADD_POINTER dest src offset size */
            struct file *d = find((const char *)c + 4), *src = find((const char *)c + 60);
            uint32_t at;
            memcpy(&at, c + 116, 4);
            uint8_t size = c[120];
            ck_assert(size == 4 || size == 8);
            ck_assert_uint_le(at + size, d->size);
            uint64_t v = 0;
            memcpy(&v, host(d) + at, size);
            ck_assert_uint_lt(v, src->size); /* an offset within the file it points into */
            v += src->gpa;
            memcpy(host(d) + at, &v, size);
        } else if (cmd == 3) { /* ADD_CHECKSUM file offset start length */
            struct file *f = find((const char *)c + 4);
            uint32_t field, start, len;
            memcpy(&field, c + 60, 4);
            memcpy(&start, c + 64, 4);
            memcpy(&len, c + 68, 4);
            ck_assert_uint_le(start + len, f->size);
            ck_assert_uint_lt(field, f->size);
            uint8_t sum = 0, *p = host(f);
            for (uint32_t i = 0; i < len; i++)
                sum += p[start + i];
            p[field] -= sum;
        } else {
            ck_abort_msg("unknown loader command %u", cmd);
        }
    }
}

static uint8_t sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    return s;
}

/* A table at gpa with signature sig and a zero checksum. */
static const uint8_t *table(uint64_t gpa, const char *sig)
{
    const uint8_t *h = gpa_to_host(&vm->mem, gpa, 36);
    ck_assert_ptr_nonnull(h);
    ck_assert_msg(memcmp(h, sig, 4) == 0, "expected %s at 0x%llx", sig, (unsigned long long)gpa);
    uint32_t len;
    memcpy(&len, h + 4, 4);
    ck_assert_uint_eq(sum(gpa_to_host(&vm->mem, gpa, len), len), 0);
    return h;
}

static void setup(void)
{
    struct kiln_config cfg;
    kiln_config_init(&cfg);
    cfg.cpus = 2;
    vm = vm_alloc(&cfg);
    ck_assert_ptr_nonnull(vm);
    ck_assert_int_eq(guest_mem_init(&vm->mem, RAM), 0);
    char err[KILN_ERRMSG_MAX];
    ck_assert_int_eq(vm_add_fw_cfg(vm, err), 0);
    dev = fw_cfg_device(vm->fw_cfg);
    const struct acpi_config ac = {.cpus = 2,
                                   .level_irqs = 1 << ACPI_SCI_IRQ,
                                   .devices = vm->devices,
                                   .ndevices = vm->ndevices,
                                   .full_hardware = true};
    ck_assert_int_eq(vm_write_fw_cfg(vm, &ac, err), 0);
    read_files();
}

static void teardown(void)
{
    for (unsigned i = 0; i < nfiles; i++)
        free(files[i].data);
    kiln_vm_destroy(vm);
}

START_TEST(test_acpi_through_the_loader)
{
    run_loader();
    struct file *rsdp_file = find("etc/acpi/rsdp");
    ck_assert_uint_eq(rsdp_file->gpa % 16, 0);
    ck_assert_uint_ge(rsdp_file->gpa, 0xe0000); /* where operating systems search */
    const uint8_t *rsdp = host(rsdp_file);
    ck_assert_int_eq(memcmp(rsdp, "RSD PTR ", 8), 0);
    ck_assert_uint_eq(sum(rsdp, 20), 0);
    ck_assert_uint_eq(sum(rsdp, 36), 0);
    uint64_t xsdt_gpa;
    memcpy(&xsdt_gpa, rsdp + 24, 8);
    const uint8_t *xsdt = table(xsdt_gpa, "XSDT");
    uint64_t fadt_gpa, madt_gpa;
    memcpy(&fadt_gpa, xsdt + 36, 8);
    memcpy(&madt_gpa, xsdt + 44, 8);
    const uint8_t *fadt = table(fadt_gpa, "FACP");
    table(madt_gpa, "APIC");
    uint32_t dsdt32, facs32;
    uint64_t dsdt64, facs64;
    memcpy(&facs32, fadt + 36, 4);
    memcpy(&dsdt32, fadt + 40, 4);
    memcpy(&facs64, fadt + 132, 8);
    memcpy(&dsdt64, fadt + 140, 8);
    ck_assert_uint_eq(dsdt32, dsdt64);
    ck_assert_uint_eq(facs32, facs64);
    const uint8_t *dsdt = table(dsdt64, "DSDT");
    uint32_t dsdt_len;
    memcpy(&dsdt_len, dsdt + 4, 4);
    ck_assert_ptr_nonnull(memmem(dsdt, dsdt_len, "QEMU0002", 8)); /* fw_cfg's own entry */
    ck_assert_uint_eq(facs64 % 64, 0);
    ck_assert_int_eq(memcmp(gpa_to_host(&vm->mem, facs64, 64), "FACS", 4), 0);
}
END_TEST

START_TEST(test_e820_and_facts)
{
    struct file *e = find("etc/e820");
    ck_assert_uint_eq(e->size, 2 * 20);
    uint64_t addr, len;
    uint32_t type;
    memcpy(&addr, e->data, 8);
    memcpy(&len, e->data + 8, 8);
    memcpy(&type, e->data + 16, 4);
    ck_assert_uint_eq(addr, 0);
    ck_assert_uint_eq(len, RAM);
    ck_assert_uint_eq(type, 1);
    memcpy(&addr, e->data + 20, 8);
    memcpy(&type, e->data + 36, 4);
    ck_assert_uint_eq(addr, LAYOUT_IDENTITY_MAP);
    ck_assert_uint_eq(type, 2);
    uint8_t v[8];
    read_item(FW_CFG_NB_CPUS, v, 2);
    ck_assert_uint_eq(v[0], 2);
    read_item(FW_CFG_RAM_SIZE, v, 8);
    uint64_t ram;
    memcpy(&ram, v, 8);
    ck_assert_uint_eq(ram, RAM);
    read_item(FW_CFG_BOOT_MENU, v, 2);
    ck_assert_uint_eq(v[0] | v[1], 0);
    struct file *sercon = find("etc/sercon-port");
    ck_assert_uint_eq(sercon->data[0] | sercon->data[1] << 8, 0x3f8);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vm_firmware");
    TCase *tc = tcase_create("fw_cfg");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_acpi_through_the_loader);
    tcase_add_test(tc, test_e820_and_facts);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
