/* vm_firmware.c: what a VM booting through BIOS firmware adds: the ROM and the fw_cfg files. */
#include "vm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/fw_cfg.h"
#include "kvm.h"
#include "platform/acpi.h"
#include "platform/layout.h"

#define ROM_SLOT GUEST_MEM_MAX_REGIONS /* the memory slot after the RAM regions */

/* Table-loader commands (QEMU's etc/table-loader, 128 bytes each, little-endian). */
#define LOADER_ENTRY 128
#define LOADER_FILE 56
#define LOADER_ALLOCATE 1
#define LOADER_ADD_POINTER 2
#define LOADER_ADD_CHECKSUM 3
#define LOADER_ZONE_HIGH 1
#define LOADER_ZONE_FSEG 2
#define LOADER_MAX (2 + 3 * ACPI_MAX_FIXUPS)

#define RSDP_FILE "etc/acpi/rsdp"
#define TABLES_FILE "etc/acpi/tables"

#define E820_RAM 1
#define E820_RESERVED 2

/* The image, read-only at the top of 4 GiB (its legacy copy below 1 MiB is already RAM). */
int vm_map_firmware(struct kiln_vm *vm, char *errmsg)
{
    struct firmware *fw = &vm->firmware;
    return kvm_map_rom(vm->vm_fd, ROM_SLOT, firmware_gpa(fw), fw->image, fw->size, errmsg);
}

int vm_add_fw_cfg(struct kiln_vm *vm, char *errmsg)
{
    int ret = fw_cfg_create(&vm->mem, &vm->log, &vm->fw_cfg);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "fw_cfg: %s", strerror(-ret));
    return vm_add_device(vm, fw_cfg_device(vm->fw_cfg), errmsg);
}

/* ---- The files. */

struct loader {
    uint8_t cmds[LOADER_MAX][LOADER_ENTRY];
    unsigned n;
};

static uint8_t *loader_next(struct loader *l, uint32_t command)
{
    uint8_t *c = l->cmds[l->n++];
    memset(c, 0, LOADER_ENTRY);
    le_put(c, 4, command);
    return c;
}

static void loader_allocate(struct loader *l, const char *file, uint32_t align, uint8_t zone)
{
    uint8_t *c = loader_next(l, LOADER_ALLOCATE);
    strncpy((char *)c + 4, file, LOADER_FILE - 1);
    le_put(c + 4 + LOADER_FILE, 4, align);
    c[4 + LOADER_FILE + 4] = zone;
}

/* The size-byte pointer at offset in dest gets the address of the tables file added to it. */
static void loader_pointer(struct loader *l, const char *dest, uint32_t offset, uint8_t size)
{
    uint8_t *c = loader_next(l, LOADER_ADD_POINTER);
    strncpy((char *)c + 4, dest, LOADER_FILE - 1);
    strncpy((char *)c + 4 + LOADER_FILE, TABLES_FILE, LOADER_FILE - 1);
    le_put(c + 4 + 2 * LOADER_FILE, 4, offset);
    c[4 + 2 * LOADER_FILE + 4] = size;
}

static void loader_checksum(struct loader *l, const char *file, uint32_t field, uint32_t start,
                            uint32_t len)
{
    uint8_t *c = loader_next(l, LOADER_ADD_CHECKSUM);
    strncpy((char *)c + 4, file, LOADER_FILE - 1);
    le_put(c + 4 + LOADER_FILE, 4, field);
    le_put(c + 4 + LOADER_FILE + 4, 4, start);
    le_put(c + 4 + LOADER_FILE + 8, 4, len);
}

/*
 * The ACPI tables as two files, the RSDP (in the F segment, where operating systems look for
 * it) and the rest (in high memory), with the loader commands that place them, fix up every
 * pointer and redo every checksum. Built for base -tables_offset, each pointer holds the offset
 * of its target within the tables file, which the loader turns into an address.
 */
static int add_acpi_files(struct kiln_vm *vm, const struct acpi_config *ac)
{
    struct acpi_tables t;
    uint32_t rsdp_room = ACPI_RSDP_SIZE; /* acpi_build puts the tables after it, 16-aligned */
    int ret = acpi_build(ac, -(uint64_t)align_up(rsdp_room, 16), &t);
    if (ret < 0)
        return ret;
    uint32_t T = t.tables_offset;
    struct loader *l = calloc(1, sizeof(*l));
    if (!l) {
        acpi_tables_free(&t);
        return -ENOMEM;
    }
    loader_allocate(l, RSDP_FILE, 16, LOADER_ZONE_FSEG);
    loader_allocate(l, TABLES_FILE, 64, LOADER_ZONE_HIGH);
    for (unsigned i = 0; i < t.npointers; i++) {
        uint32_t at = t.pointers[i].offset;
        loader_pointer(l, at < T ? RSDP_FILE : TABLES_FILE, at < T ? at : at - T,
                       t.pointers[i].size);
    }
    /* Checksums last: each covers pointers the loader has patched by then. */
    for (unsigned i = 0; i < t.nsums; i++) {
        const struct acpi_checksum *s = &t.sums[i];
        uint32_t shift = s->start < T ? 0 : T;
        loader_checksum(l, s->start < T ? RSDP_FILE : TABLES_FILE, s->field - shift,
                        s->start - shift, s->len);
    }
    ret = fw_cfg_add_file(vm->fw_cfg, RSDP_FILE, t.buf, ACPI_RSDP_SIZE);
    if (ret == 0)
        ret = fw_cfg_add_file(vm->fw_cfg, TABLES_FILE, t.buf + T, t.len - T);
    if (ret == 0)
        ret = fw_cfg_add_file(vm->fw_cfg, "etc/table-loader", l->cmds, l->n * LOADER_ENTRY);
    free(l);
    acpi_tables_free(&t);
    return ret;
}

static void e820_entry(uint8_t *e, uint64_t addr, uint64_t len, uint32_t type)
{
    le_put(e, 8, addr);
    le_put(e + 8, 8, len);
    le_put(e + 16, 4, type);
}

/* RAM below the PCI hole and above 4 GiB, and the pages KVM keeps for itself below the ROM. */
static int add_e820(struct kiln_vm *vm)
{
    uint8_t map[3][20];
    unsigned n = 0;
    uint64_t low = guest_low_end(&vm->mem);
    e820_entry(map[n++], 0, low, E820_RAM);
    if (vm->mem.size > low)
        e820_entry(map[n++], LAYOUT_4G, vm->mem.size - low, E820_RAM);
    e820_entry(map[n++], LAYOUT_IDENTITY_MAP, 4 * 4096, E820_RESERVED);
    return fw_cfg_add_file(vm->fw_cfg, "etc/e820", map, n * 20);
}

/* Machine facts: RAM, CPUs; no boot menu wait; SeaBIOS's console on COM1 (there is no VGA). */
static int add_settings(struct kiln_vm *vm)
{
    uint8_t ram[8], cpus[2], none[2] = {0, 0}, com1[2];
    le_put(ram, 8, vm->mem.size);
    le_put(cpus, 2, vm->cfg.cpus);
    le_put(com1, 2, 0x3f8);
    int ret = fw_cfg_set(vm->fw_cfg, FW_CFG_RAM_SIZE, ram, sizeof(ram));
    if (ret == 0)
        ret = fw_cfg_set(vm->fw_cfg, FW_CFG_NB_CPUS, cpus, sizeof(cpus));
    if (ret == 0)
        ret = fw_cfg_set(vm->fw_cfg, FW_CFG_MAX_CPUS, cpus, sizeof(cpus));
    if (ret == 0)
        ret = fw_cfg_set(vm->fw_cfg, FW_CFG_BOOT_MENU, none, sizeof(none));
    if (ret == 0)
        ret = fw_cfg_add_file(vm->fw_cfg, "etc/sercon-port", com1, sizeof(com1));
    return ret;
}

int vm_write_fw_cfg(struct kiln_vm *vm, const struct acpi_config *ac, char *errmsg)
{
    int ret = add_e820(vm);
    if (ret == 0)
        ret = add_settings(vm);
    if (ret == 0)
        ret = add_acpi_files(vm, ac);
    return ret < 0 ? kiln_fail(errmsg, -ret, "firmware configuration (fw_cfg): %s", strerror(-ret))
                   : 0;
}
