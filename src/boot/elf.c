/* elf.c: loads ELF64 x86-64 kernels, entered via the Xen PVH note or in long mode at e_entry. */
#include <asm/bootparam.h>
#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "boot/bootparams.h"
#include "boot/e820.h"
#include "boot/loader.h"
#include "platform/layout.h"
#include "util.h"

/* Xen ELF note giving the 32-bit, paging-off PVH entry point. */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* PVH boot information, laid out as in Xen's public hvm/start_info.h (version 1). */
#define HVM_START_MAGIC 0x336ec578
#define HVM_START_VERSION 1

struct hvm_start_info {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr; /* version 1 */
    uint32_t memmap_entries;
    uint32_t reserved;
};

struct hvm_modlist_entry {
    uint64_t paddr;
    uint64_t size;
    uint64_t cmdline_paddr;
    uint64_t reserved;
};

struct hvm_memmap_table_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type; /* same values as e820 */
    uint32_t reserved;
};

_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info v1 is 56 bytes");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry is 32 bytes");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry is 24 bytes");

/* The memmap follows start_info and the module list follows the memmap, all in one page. */
#define PVH_MEMMAP_MAX 8
_Static_assert(sizeof(struct hvm_start_info) +
                       PVH_MEMMAP_MAX * sizeof(struct hvm_memmap_table_entry) +
                       sizeof(struct hvm_modlist_entry) <=
                   LAYOUT_ZERO_PAGE - LAYOUT_START_INFO,
               "PVH boot information fits below the zero page");

/* What the checks learn about the image before anything is written to guest RAM. */
/* Largest PT_NOTE segment kiln reads looking for the PVH entry note. */
#define ELF_NOTES_MAX (1u << 20)

struct elf_plan {
    Elf64_Ehdr eh;
    Elf64_Phdr *phdrs; /* the program header table, read once; freed by elf_load */
    uint64_t load_end; /* highest p_paddr + p_memsz of the PT_LOAD segments */
    bool pvh;
    uint64_t entry;
    uint64_t initrd_addr;
};

static void elf_phdr(const struct elf_plan *p, unsigned i, Elf64_Phdr *ph)
{
    *ph = p->phdrs[i];
}

static int elf_read_fail(const struct boot_blob *k, int err, char *errmsg)
{
    return kiln_fail(errmsg, err, "kernel '%s': read failed: %s", k->name, strerror(err));
}

static int elf_check_ident(const struct boot_blob *k, Elf64_Ehdr *eh, char *errmsg)
{
    if (k->len < sizeof(*eh))
        return kiln_fail(errmsg, ENOEXEC, "kernel '%s': truncated ELF header (%zu bytes)", k->name,
                         k->len);
    int ret = blob_read(k, 0, eh, sizeof(*eh));
    if (ret < 0)
        return elf_read_fail(k, -ret, errmsg);
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
        return kiln_fail(errmsg, ENOEXEC, "kernel '%s': not an ELF file", k->name);
    if (eh->e_ident[EI_CLASS] != ELFCLASS64)
        return kiln_fail(errmsg, ENOEXEC, "kernel '%s': not a 64-bit ELF (class %u)", k->name,
                         eh->e_ident[EI_CLASS]);
    if (eh->e_ident[EI_DATA] != ELFDATA2LSB)
        return kiln_fail(errmsg, ENOEXEC, "kernel '%s': not a little-endian ELF", k->name);
    if (eh->e_ident[EI_VERSION] != EV_CURRENT || eh->e_version != EV_CURRENT)
        return kiln_fail(errmsg, ENOEXEC, "kernel '%s': unknown ELF version", k->name);
    return 0;
}

static int elf_check_header(const struct boot_blob *k, struct elf_plan *p, char *errmsg)
{
    Elf64_Ehdr *eh = &p->eh;
    int ret = elf_check_ident(k, eh, errmsg);
    if (ret < 0)
        return ret;
    if (eh->e_machine != EM_X86_64)
        return kiln_fail(errmsg, ENOEXEC, "kernel '%s': ELF machine %u is not x86-64", k->name,
                         eh->e_machine);
    if (eh->e_type != ET_EXEC)
        return kiln_fail(errmsg, ENOEXEC, "kernel '%s': ELF type %u is not an executable", k->name,
                         eh->e_type);
    if (eh->e_phentsize != sizeof(Elf64_Phdr))
        return kiln_fail(errmsg, ENOEXEC, "kernel '%s': ELF program header size %u (expected %zu)",
                         k->name, eh->e_phentsize, sizeof(Elf64_Phdr));
    /* PN_XNUM defers the count to section 0: not something a kernel needs. */
    if (eh->e_phnum == PN_XNUM)
        return kiln_fail(errmsg, ENOEXEC, "kernel '%s': too many ELF program headers", k->name);
    /* At most 65534 * 56 bytes: the product cannot overflow, the sum is checked. */
    uint64_t table = (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr);
    if (!range_within(eh->e_phoff, table, k->len))
        return kiln_fail(errmsg, ENOEXEC,
                         "kernel '%s': ELF program headers (offset 0x%llx, %u entries) lie outside "
                         "the file (%zu bytes)",
                         k->name, (unsigned long long)eh->e_phoff, eh->e_phnum, k->len);
    p->phdrs = malloc(table ? table : 1);
    if (!p->phdrs)
        return kiln_fail(errmsg, ENOMEM, "kernel '%s': out of memory", k->name);
    ret = blob_read(k, eh->e_phoff, p->phdrs, table);
    return ret < 0 ? elf_read_fail(k, -ret, errmsg) : 0;
}

static int elf_check_load(const struct guest_mem *gm, const struct boot_blob *k,
                          const Elf64_Phdr *ph, unsigned i, char *errmsg)
{
    if (!range_within(ph->p_offset, ph->p_filesz, k->len))
        return kiln_fail(errmsg, ENOEXEC,
                         "kernel '%s': segment %u (offset 0x%llx, 0x%llx bytes) lies outside the "
                         "file (%zu bytes)",
                         k->name, i, (unsigned long long)ph->p_offset,
                         (unsigned long long)ph->p_filesz, k->len);
    if (ph->p_filesz > ph->p_memsz)
        return kiln_fail(errmsg, ENOEXEC,
                         "kernel '%s': segment %u has 0x%llx file bytes but only 0x%llx in memory",
                         k->name, i, (unsigned long long)ph->p_filesz,
                         (unsigned long long)ph->p_memsz);
    if (!range_within(ph->p_paddr, ph->p_memsz, UINT64_MAX))
        return kiln_fail(errmsg, ENOEXEC, "kernel '%s': segment %u wraps around the address space",
                         k->name, i);
    if (!gpa_to_host(gm, ph->p_paddr, ph->p_memsz))
        return kiln_fail(errmsg, ENOMEM,
                         "kernel '%s': segment %u [0x%llx, 0x%llx) is outside the VM's RAM "
                         "(%llu MiB)",
                         k->name, i, (unsigned long long)ph->p_paddr,
                         (unsigned long long)(ph->p_paddr + ph->p_memsz),
                         (unsigned long long)(gm->size / MIB));
    return 0;
}

static int elf_check_segments(const struct guest_mem *gm, const struct boot_blob *k,
                              struct elf_plan *p, char *errmsg)
{
    unsigned loads = 0;
    p->load_end = 0;
    for (unsigned i = 0; i < p->eh.e_phnum; i++) {
        Elf64_Phdr ph;
        elf_phdr(p, i, &ph);
        if (ph.p_type != PT_LOAD)
            continue;
        int ret = elf_check_load(gm, k, &ph, i, errmsg);
        if (ret < 0)
            return ret;
        loads++;
        if (ph.p_paddr + ph.p_memsz > p->load_end)
            p->load_end = ph.p_paddr + ph.p_memsz;
    }
    if (loads == 0)
        return kiln_fail(errmsg, ENOEXEC, "kernel '%s': ELF has no PT_LOAD segment", k->name);
    return 0;
}

/* True if the note is Xen's PHYS32_ENTRY; its name is "Xen" with or without the NUL. */
static bool note_is_pvh(const Elf64_Nhdr *nh, const uint8_t *name)
{
    if (nh->n_type != XEN_ELFNOTE_PHYS32_ENTRY)
        return false;
    if (nh->n_namesz == 4)
        return memcmp(name, "Xen", 4) == 0;
    return nh->n_namesz == 3 && memcmp(name, "Xen", 3) == 0;
}

/* Read the PVH entry address: 32 or 64 bits, little-endian. */
static int note_pvh_entry(const Elf64_Nhdr *nh, const uint8_t *desc, uint64_t *entry)
{
    if (nh->n_descsz == 4) {
        uint32_t v;
        memcpy(&v, desc, sizeof(v));
        *entry = v;
        return 1;
    }
    if (nh->n_descsz == 8) {
        memcpy(entry, desc, sizeof(*entry));
        return 1;
    }
    return -ENOEXEC;
}

/*
 * Walk the notes in [p, p + len) (align 4 or 8). Returns 1 with *entry set if the PVH note is
 * there, 0 if not, -ENOEXEC if a note runs past the end or the PVH note is malformed.
 */
static int notes_find_pvh(const uint8_t *p, uint64_t len, uint64_t align, uint64_t *entry)
{
    uint64_t off = 0;
    while (off < len) {
        Elf64_Nhdr nh;
        if (len - off < sizeof(nh))
            return -ENOEXEC;
        memcpy(&nh, p + off, sizeof(nh));
        /* off <= len, the size of a host buffer: adding 32-bit sizes to it cannot wrap. */
        uint64_t name_off = off + sizeof(nh);
        uint64_t desc_off = align_up(name_off + nh.n_namesz, align);
        if (desc_off > len || nh.n_descsz > len - desc_off)
            return -ENOEXEC;
        if (note_is_pvh(&nh, p + name_off))
            return note_pvh_entry(&nh, p + desc_off, entry);
        off = align_up(desc_off + nh.n_descsz, align);
    }
    return 0;
}

/* Look through the PT_NOTE segments: 1 found, 0 not found, or -errno with errmsg set. */
static int elf_find_pvh(const struct boot_blob *k, struct elf_plan *p, char *errmsg)
{
    for (unsigned i = 0; i < p->eh.e_phnum; i++) {
        Elf64_Phdr ph;
        elf_phdr(p, i, &ph);
        if (ph.p_type != PT_NOTE)
            continue;
        if (!range_within(ph.p_offset, ph.p_filesz, k->len))
            return kiln_fail(errmsg, ENOEXEC, "kernel '%s': note segment %u lies outside the file",
                             k->name, i);
        /* Kernels carry a few hundred bytes of notes; a huge note segment is not a kernel. */
        if (ph.p_filesz > ELF_NOTES_MAX)
            return kiln_fail(errmsg, ENOEXEC, "kernel '%s': note segment %u is too large", k->name,
                             i);
        uint8_t *notes = malloc(ph.p_filesz ? ph.p_filesz : 1);
        if (!notes)
            return kiln_fail(errmsg, ENOMEM, "kernel '%s': out of memory", k->name);
        int ret = blob_read(k, ph.p_offset, notes, ph.p_filesz);
        if (ret < 0) {
            free(notes);
            return elf_read_fail(k, -ret, errmsg);
        }
        ret = notes_find_pvh(notes, ph.p_filesz, ph.p_align == 8 ? 8 : 4, &p->entry);
        free(notes);
        if (ret < 0)
            return kiln_fail(errmsg, ENOEXEC, "kernel '%s': malformed note in segment %u", k->name,
                             i);
        if (ret > 0)
            return 1;
    }
    return 0;
}

static int elf_check_entry(const struct guest_mem *gm, const struct boot_blob *k,
                           struct elf_plan *p, char *errmsg)
{
    int ret = elf_find_pvh(k, p, errmsg);
    if (ret < 0)
        return ret;
    p->pvh = ret > 0;
    if (!p->pvh)
        p->entry = p->eh.e_entry;
    /* The PVH entry runs in 32-bit mode, so it must also be below 4 GiB. */
    if ((p->pvh && p->entry >= LAYOUT_4G) || !gpa_to_host(gm, p->entry, 1))
        return kiln_fail(errmsg, ENOEXEC, "kernel '%s': %s entry point 0x%llx is outside guest RAM",
                         k->name, p->pvh ? "PVH" : "ELF", (unsigned long long)p->entry);
    return 0;
}

static int elf_plan(const struct guest_mem *gm, const struct boot_input *in, struct elf_plan *p,
                    char *errmsg)
{
    p->phdrs = NULL;
    int ret = elf_check_header(&in->kernel, p, errmsg);
    if (!ret)
        ret = elf_check_segments(gm, &in->kernel, p, errmsg);
    if (!ret)
        ret = elf_check_entry(gm, &in->kernel, p, errmsg);
    if (!ret)
        ret = boot_cmdline_check(in, LAYOUT_CMDLINE_MAX - 1, errmsg);
    if (ret < 0)
        return ret;
    /* Keep the initrd clear of the boot structures below 1 MiB even for a low-loaded kernel. */
    uint64_t floor = p->load_end > LAYOUT_HIGH_START ? p->load_end : LAYOUT_HIGH_START;
    return boot_initrd_place(gm, in, floor, UINT64_MAX, &p->initrd_addr, errmsg);
}

/* Copy each PT_LOAD segment to p_paddr and zero its tail (bss); all were checked. */
static int elf_copy_segments(const struct guest_mem *gm, const struct boot_blob *k,
                             const struct elf_plan *p, char *errmsg)
{
    for (unsigned i = 0; i < p->eh.e_phnum; i++) {
        Elf64_Phdr ph;
        elf_phdr(p, i, &ph);
        if (ph.p_type != PT_LOAD)
            continue;
        uint8_t *dst = gpa_to_host(gm, ph.p_paddr, ph.p_memsz);
        int ret = blob_read(k, ph.p_offset, dst, ph.p_filesz);
        if (ret < 0)
            return elf_read_fail(k, -ret, errmsg);
        memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
    }
    return 0;
}

static int pvh_write_memmap(const struct guest_mem *gm, uint64_t addr, uint32_t *count)
{
    struct e820_range map[PVH_MEMMAP_MAX];
    unsigned n = e820_build(gm, map, PVH_MEMMAP_MAX);
    for (unsigned i = 0; i < n; i++) {
        struct hvm_memmap_table_entry e = {
            .addr = map[i].addr, .size = map[i].size, .type = map[i].type};
        if (guest_write(gm, addr + i * sizeof(e), &e, sizeof(e)) < 0)
            return -ENOMEM;
    }
    *count = n;
    return 0;
}

static int pvh_write_start_info(const struct guest_mem *gm, const struct boot_input *in,
                                const struct elf_plan *p, char *errmsg)
{
    struct hvm_start_info si = {
        .magic = HVM_START_MAGIC,
        .version = HVM_START_VERSION,
        .cmdline_paddr = LAYOUT_CMDLINE,
        .rsdp_paddr = in->rsdp_addr,
        .memmap_paddr = LAYOUT_START_INFO + sizeof(si),
    };
    int ret = pvh_write_memmap(gm, si.memmap_paddr, &si.memmap_entries);
    if (!ret && in->initrd.len) {
        struct hvm_modlist_entry mod = {.paddr = p->initrd_addr, .size = in->initrd.len};
        si.nr_modules = 1;
        si.modlist_paddr =
            si.memmap_paddr + si.memmap_entries * sizeof(struct hvm_memmap_table_entry);
        ret = guest_write(gm, si.modlist_paddr, &mod, sizeof(mod));
    }
    if (!ret)
        ret = guest_write(gm, LAYOUT_START_INFO, &si, sizeof(si));
    if (ret < 0)
        return kiln_fail(errmsg, ENOMEM, "no guest RAM for the PVH start info at 0x%llx",
                         LAYOUT_START_INFO);
    return 0;
}

/* A zero page for a kernel entered at its 64-bit entry: no file header, so fill in the magic. */
static int elf_write_zero_page(const struct guest_mem *gm, const struct boot_input *in,
                               const struct elf_plan *p, char *errmsg)
{
    struct boot_params bp;
    memset(&bp, 0, sizeof(bp));
    bp.hdr.boot_flag = BOOT_FLAG_MAGIC;
    bp.hdr.header = BOOT_HEADER_MAGIC;
    bp.hdr.version = 0x020c;
    bp.hdr.cmdline_size = LAYOUT_CMDLINE_MAX - 1;
    return bootparams_write(gm, &bp, in, p->initrd_addr, errmsg);
}

int elf_load(const struct guest_mem *gm, const struct boot_input *in, struct boot_entry *out,
             char *errmsg)
{
    struct elf_plan p;
    int ret = elf_plan(gm, in, &p, errmsg);
    if (!ret)
        ret = elf_copy_segments(gm, &in->kernel, &p, errmsg);
    free(p.phdrs);
    if (!ret)
        ret = boot_initrd_write(gm, in, p.initrd_addr, errmsg);
    if (!ret)
        ret = boot_cmdline_write(gm, in, errmsg);
    if (!ret)
        ret = p.pvh ? pvh_write_start_info(gm, in, &p, errmsg)
                    : elf_write_zero_page(gm, in, &p, errmsg);
    if (ret < 0)
        return ret;
    *out = (struct boot_entry){.mode = p.pvh ? BOOT_MODE_PVH32 : BOOT_MODE_LONG64,
                               .entry = p.entry,
                               .boot_info = p.pvh ? LAYOUT_START_INFO : LAYOUT_ZERO_PAGE};
    return 0;
}
