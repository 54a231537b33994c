/* loader.c: reads the kernel and initrd, recognises the kernel format and runs its loader. */
#include "boot/loader.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot/bootparams.h"
#include "platform/layout.h"
#include "util.h"

/* Name used in messages for images handed over in memory rather than read from a file. */
#define IN_MEMORY_NAME "<memory>"

/* A one-line message about what (kernel/initrd) and path for an errno from opening it. */
static int open_fail(const char *what, const char *path, int err, const char *limit_desc,
                     char *errmsg)
{
    switch (err) {
    case ENOENT:
        return kiln_fail(errmsg, ENOENT, "%s '%s': no such file", what, path);
    case EISDIR:
        return kiln_fail(errmsg, EISDIR, "%s '%s': is a directory", what, path);
    case EINVAL:
        return kiln_fail(errmsg, EINVAL, "%s '%s': not a regular file", what, path);
    case EFBIG:
        return kiln_fail(errmsg, EFBIG, "%s '%s': file is larger than %s", what, path, limit_desc);
    default: {
        char buf[128];
        return kiln_fail(errmsg, err, "%s '%s': %s", what, path, strerror_r(err, buf, sizeof(buf)));
    }
    }
}

/* errno for a file kiln cannot load as an image of at most limit bytes, 0 if it may. */
static int check_image_file(int fd, uint64_t limit, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return errno;
    if (S_ISDIR(st.st_mode))
        return EISDIR;
    if (!S_ISREG(st.st_mode))
        return EINVAL;
    if ((uint64_t)st.st_size > limit)
        return EFBIG;
    *size = (uint64_t)st.st_size;
    return 0;
}

int boot_open(const char *what, const char *path, uint64_t limit, const char *limit_desc,
              int empty_err, struct boot_blob *out, char *errmsg)
{
    uint64_t size = 0;
    /* O_NONBLOCK: a FIFO given as an image must fail its check, not wait for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    int err = fd < 0 ? errno : check_image_file(fd, limit < SIZE_MAX ? limit : SIZE_MAX, &size);
    if (err) {
        if (fd >= 0)
            close(fd);
        return open_fail(what, path, err, limit_desc, errmsg);
    }
    *out = (struct boot_blob){.name = path, .len = (size_t)size, .fd = fd};
    if (size == 0)
        return kiln_fail(errmsg, empty_err, "%s '%s': empty file", what, path);
    return 0;
}

/*
 * Open a kernel or initrd file and size it, keeping the fd in out: contents are read later,
 * straight to where they go. Anything larger than guest RAM could never be loaded.
 */
static int open_image(const struct guest_mem *gm, const char *what, const char *path, int empty_err,
                      struct boot_blob *out, char *errmsg)
{
    char desc[64];
    snprintf(desc, sizeof(desc), "the VM's %llu MiB of RAM", (unsigned long long)(gm->size / MIB));
    return boot_open(what, path, gm->size, desc, empty_err, out, errmsg);
}

static int dispatch(const struct guest_mem *gm, const struct boot_input *in, struct boot_entry *out,
                    char *errmsg)
{
    const struct boot_blob *k = &in->kernel;
    uint8_t head[BOOT_BLOB_HEAD];
    size_t n = k->len < sizeof(head) ? k->len : sizeof(head);
    int ret = blob_read(k, 0, head, n);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "kernel '%s': read failed: %s", k->name, strerror(-ret));
    if (bzimage_detect(head, n))
        return bzimage_load(gm, in, out, errmsg);
    if (n >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0)
        return elf_load(gm, in, out, errmsg);
    return kiln_fail(errmsg, ENOEXEC, "kernel '%s': not a bzImage or ELF64 image", k->name);
}

int load_kernel(const struct guest_mem *gm, const struct boot_request *req, struct boot_entry *out,
                char *errmsg)
{
    if (!req || !req->kernel_path)
        return kiln_fail(errmsg, EINVAL, "no kernel given");
    struct boot_input in = {
        .kernel = {.fd = -1},
        .initrd = {.fd = -1},
        .cmdline = req->cmdline ? req->cmdline : "",
        .rsdp_addr = req->rsdp_addr,
    };
    /* Both stay files: the loaders read their parts straight to their place in guest RAM. */
    int ret = open_image(gm, "kernel", req->kernel_path, ENOEXEC, &in.kernel, errmsg);
    if (!ret && req->initrd_path)
        ret = open_image(gm, "initrd", req->initrd_path, EINVAL, &in.initrd, errmsg);
    if (!ret)
        ret = dispatch(gm, &in, out, errmsg);
    if (in.kernel.fd >= 0)
        close(in.kernel.fd);
    if (in.initrd.fd >= 0)
        close(in.initrd.fd);
    return ret;
}

static struct boot_input memory_input(const char *name, const uint8_t *img, size_t len,
                                      const uint8_t *initrd, size_t initrd_len, const char *cmdline)
{
    struct boot_input in = {
        .kernel = {.name = name ? name : IN_MEMORY_NAME, .data = img, .len = len, .fd = -1},
        .initrd = {.fd = -1},
        .cmdline = cmdline ? cmdline : "",
    };
    /* An empty initrd is no initrd. */
    if (initrd && initrd_len)
        in.initrd =
            (struct boot_blob){.name = IN_MEMORY_NAME, .data = initrd, .len = initrd_len, .fd = -1};
    return in;
}

int load_bzimage(const struct guest_mem *gm, const char *name, const uint8_t *img, size_t len,
                 const uint8_t *initrd, size_t initrd_len, const char *cmdline,
                 struct boot_entry *out, char *errmsg)
{
    struct boot_input in = memory_input(name, img, len, initrd, initrd_len, cmdline);
    return bzimage_load(gm, &in, out, errmsg);
}

int load_elf(const struct guest_mem *gm, const char *name, const uint8_t *img, size_t len,
             const uint8_t *initrd, size_t initrd_len, const char *cmdline, struct boot_entry *out,
             char *errmsg)
{
    struct boot_input in = memory_input(name, img, len, initrd, initrd_len, cmdline);
    return elf_load(gm, &in, out, errmsg);
}
