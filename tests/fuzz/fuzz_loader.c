/* fuzz_loader.c: boot/'s loaders (bzImage, ELF and PVH, initrd, BIOS image) on any file. */
#include <asm/bootparam.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "boot/firmware.h"
#include "boot/loader.h"
#include "fuzz_common.h"
#include "platform/layout.h"

/*
 * Input:
 *   u8  flags: bit 0 load from memory (load_bzimage and load_elf on heap copies, where
 *       AddressSanitizer sees any read past the image) instead of from files through
 *       load_kernel (what kiln_vm_create does), bit 1 an ACPI RSDP address, bit 2 an initrd;
 *       bits 3-4 both set: the kernel (bit 5 clear) or the initrd (bit 5 set) path names no image
 *       file but a directory, a missing file, a character device or a FIFO (bits 6-7); bit 3
 *       alone (from files): the image is a BIOS for firmware_load (what a run without --kernel
 *       loads)
 *   u16 guest RAM: 8 MiB (the smallest --memory) plus this many 4 KiB pages (mod 2048)
 *   u16 command line length (then its bytes; a NUL ends it early)
 *   u32 initrd length (then its bytes)
 *   ... the kernel image: the rest of the input
 * On success, what the loaders promise is checked: the entry point is in RAM, the command
 * line is at its place, and (zero page boots) the initrd sits where the zero page says, intact.
 */

#define RAM_MIN KILN_MIN_MEMORY
#define RAM_MAX (RAM_MIN + 2047 * 4096ULL)

static struct fz_ram ram;
static int kernel_fd = -1, initrd_fd = -1, fifo_fd = -1;

/* A memfd holding a file's bytes, reached by path like any file (nothing is left on disk). */
static int make_file(const char *name)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        abort();
    return fd;
}

static void fill_file(int fd, const uint8_t *data, size_t len, char *path, size_t path_size)
{
    if (ftruncate(fd, 0) < 0 || (len && pwrite(fd, data, len, 0) != (ssize_t)len))
        abort();
    snprintf(path, path_size, "/proc/self/fd/%d", fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_ram_alloc(&ram, RAM_MAX, 0);
    kernel_fd = make_file("kiln-fuzz-kernel");
    initrd_fd = make_file("kiln-fuzz-initrd");
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        abort();
    fifo_fd = p[0]; /* the write end stays open too, so opening the FIFO never waits */
    return 0;
}

/* A path that names no image file: kiln must refuse it with a message, not read or block. */
static const char *odd_path(unsigned v, char *buf, size_t size)
{
    switch (v & 3) {
    case 0:
        return "/"; /* a directory */
    case 1:
        return "/nonexistent/kiln-fuzz";
    case 2:
        return "/dev/null"; /* a character device */
    default:
        snprintf(buf, size, "/proc/self/fd/%d", fifo_fd);
        return buf;
    }
}

/*
 * Guest RAM of size bytes: the last size bytes of the heap block, so an access past the end of
 * RAM runs into AddressSanitizer's redzone. The loaders only ever write guest RAM, so what an
 * earlier input left there cannot change what happens.
 */
static void set_ram(uint64_t size)
{
    ram.gm.regions[0] = (struct guest_region){0, size, ram.block[0] + (RAM_MAX - size)};
    ram.gm.size = size;
    ram.gm.base = ram.gm.regions[0].host;
}

/* What a successful load promises (loader.h, bootparams.h). */
static void check_loaded(const struct boot_entry *e, const char *cmdline, const uint8_t *initrd,
                         size_t initrd_len)
{
    FZ_CHECK(e->mode == BOOT_MODE_LONG64 || e->mode == BOOT_MODE_PVH32);
    FZ_CHECK(gpa_to_host(&ram.gm, e->entry, 1) != NULL);
    FZ_CHECK(e->boot_info == (e->mode == BOOT_MODE_PVH32 ? LAYOUT_START_INFO : LAYOUT_ZERO_PAGE));
    const char *cl = gpa_to_host(&ram.gm, LAYOUT_CMDLINE, strlen(cmdline) + 1);
    FZ_CHECK(cl && strcmp(cl, cmdline) == 0);
    if (e->mode != BOOT_MODE_LONG64)
        return;
    const struct boot_params *bp = gpa_to_host(&ram.gm, LAYOUT_ZERO_PAGE, sizeof(*bp));
    FZ_CHECK(bp && bp->hdr.cmd_line_ptr == LAYOUT_CMDLINE);
    FZ_CHECK(bp->hdr.ramdisk_size == initrd_len);
    if (!initrd_len)
        return;
    const uint8_t *rd = gpa_to_host(&ram.gm, bp->hdr.ramdisk_image, initrd_len);
    FZ_CHECK(rd && bp->hdr.ramdisk_image % 4096 == 0 && bp->hdr.ramdisk_image >= LAYOUT_HIGH_START);
    FZ_CHECK(memcmp(rd, initrd, initrd_len) == 0); /* nothing loaded later overwrote it */
}

/* What kiln_vm_create does: load_kernel on the files. */
static void load_files(uint8_t flags, const uint8_t *kernel, size_t klen, const uint8_t *initrd,
                       size_t ilen, const char *cmdline)
{
    char kpath[64], ipath[64], odd[64];
    bool with_initrd = flags & 4;
    fill_file(kernel_fd, kernel, klen, kpath, sizeof(kpath));
    fill_file(initrd_fd, initrd, ilen, ipath, sizeof(ipath));
    struct boot_request req = {
        .kernel_path = kpath,
        .initrd_path = with_initrd ? ipath : NULL,
        .cmdline = cmdline,
        .rsdp_addr = flags & 2 ? 0xe0000 : 0,
    };
    if ((flags & 0x18) == 0x18) {
        *(flags & 0x20 ? &req.initrd_path : &req.kernel_path) =
            odd_path(flags >> 6, odd, sizeof(odd));
        with_initrd = req.initrd_path != NULL;
    }
    struct boot_entry e;
    char err[KILN_ERRMSG_MAX] = "";
    int ret = load_kernel(&ram.gm, &req, &e, err);
    fz_result("load_kernel", ret, err);
    FZ_CHECK(ret <= 0 && (ret == 0 || err[0]));
    if (ret == 0)
        check_loaded(&e, cmdline, initrd, with_initrd ? ilen : 0);
}

/* A BIOS image: on success vCPU 0 starts at the reset vector with the image's tail below 1 MiB. */
static void load_firmware(const uint8_t *image, size_t len)
{
    char path[64];
    fill_file(kernel_fd, image, len, path, sizeof(path));
    struct firmware fw;
    struct boot_entry e;
    char err[KILN_ERRMSG_MAX] = "";
    int ret = firmware_load(&ram.gm, path, &fw, &e, err);
    fz_result("firmware_load", ret, err);
    if (ret < 0)
        return;
    FZ_CHECK(e.mode == BOOT_MODE_RESET && fw.size == len && memcmp(fw.image, image, len) == 0);
    size_t legacy = len < FIRMWARE_LEGACY_MAX ? len : FIRMWARE_LEGACY_MAX;
    const uint8_t *low = gpa_to_host(&ram.gm, FIRMWARE_LEGACY_END - legacy, legacy);
    FZ_CHECK(low && memcmp(low, image + len - legacy, legacy) == 0);
    firmware_free(&fw);
}

/* The in-memory loaders on exact-size heap copies of the image and initrd. */
static void load_memory(const uint8_t *kernel, size_t klen, const uint8_t *initrd, size_t ilen,
                        bool with_initrd, const char *cmdline)
{
    uint8_t *k = malloc(klen ? klen : 1), *i = malloc(ilen ? ilen : 1);
    if (!k || !i)
        abort();
    memcpy(k, kernel, klen);
    memcpy(i, initrd, ilen);
    size_t rd_len = with_initrd ? ilen : 0;
    struct boot_entry e;
    char err[KILN_ERRMSG_MAX] = "";
    int ret =
        load_bzimage(&ram.gm, "bz", k, klen, with_initrd ? i : NULL, rd_len, cmdline, &e, err);
    fz_result("load_bzimage", ret, err);
    if (ret == 0)
        check_loaded(&e, cmdline, i, rd_len);
    ret = load_elf(&ram.gm, "elf", k, klen, with_initrd ? i : NULL, rd_len, cmdline, &e, err);
    fz_result("load_elf", ret, err);
    if (ret == 0)
        check_loaded(&e, cmdline, i, rd_len);
    free(k);
    free(i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    uint8_t flags = fz_u8(&f);
    set_ram(RAM_MIN + (fz_u16(&f) % 2048) * 4096ULL);
    struct fz cl = fz_sub(&f, fz_u16(&f));
    char *cmdline = calloc(1, cl.n + 1);
    if (!cmdline)
        abort();
    fz_take(&cl, cmdline, cl.n);
    struct fz rd = fz_sub(&f, fz_u32(&f));
    if (flags & 1)
        load_memory(f.p, f.n, rd.p, rd.n, flags & 4, cmdline);
    else if ((flags & 0x18) == 0x08)
        load_firmware(f.p, f.n);
    else
        load_files(flags, f.p, f.n, rd.p, rd.n, cmdline);
    free(cmdline);
    return 0;
}
