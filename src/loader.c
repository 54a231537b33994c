/* loader.c: reads the kernel and initrd, recognises the kernel format and runs its loader. */
#include "loader.h"

#include <elf.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bootparams.h"
#include "layout.h"
#include "util.h"

/* Name used in messages for images handed over in memory rather than read from a file. */
#define IN_MEMORY_NAME "<memory>"

/* Turn a read_file() failure into a one-line message about what (kernel/initrd) and path. */
static int read_fail(const char *what, const char *path, int err, uint64_t limit, char *errmsg)
{
    switch (err) {
    case ENOENT:
        return kiln_fail(errmsg, ENOENT, "%s '%s': no such file", what, path);
    case EISDIR:
        return kiln_fail(errmsg, EISDIR, "%s '%s': is a directory", what, path);
    case EINVAL:
        return kiln_fail(errmsg, EINVAL, "%s '%s': not a regular file", what, path);
    case EFBIG:
        return kiln_fail(errmsg, EFBIG, "%s '%s': file is larger than the VM's %llu MiB of RAM",
                         what, path, (unsigned long long)(limit / MIB));
    default: {
        char buf[128];
        return kiln_fail(errmsg, err, "%s '%s': %s", what, path, strerror_r(err, buf, sizeof(buf)));
    }
    }
}

/*
 * Read an image of at most guest-RAM size: anything larger could never be loaded. An empty file
 * fails with empty_err.
 */
static int read_image(const struct guest_mem *gm, const char *what, const char *path, int empty_err,
                      struct boot_blob *out, char *errmsg)
{
    uint64_t limit = gm->size < SIZE_MAX ? gm->size : SIZE_MAX;
    uint8_t *data = NULL;
    size_t len = 0;
    int ret = read_file(path, (size_t)limit, &data, &len);
    if (ret < 0)
        return read_fail(what, path, -ret, limit, errmsg);
    if (len == 0) {
        free(data);
        return kiln_fail(errmsg, empty_err, "%s '%s': empty file", what, path);
    }
    *out = (struct boot_blob){.name = path, .data = data, .len = len};
    return 0;
}

static int dispatch(const struct guest_mem *gm, const struct boot_input *in, struct boot_entry *out,
                    char *errmsg)
{
    const struct boot_blob *k = &in->kernel;
    if (bzimage_detect(k->data, k->len))
        return bzimage_load(gm, in, out, errmsg);
    if (k->len >= SELFMAG && memcmp(k->data, ELFMAG, SELFMAG) == 0)
        return elf_load(gm, in, out, errmsg);
    return kiln_fail(errmsg, ENOEXEC, "kernel '%s': not a bzImage or ELF64 image", k->name);
}

int load_kernel(const struct guest_mem *gm, const struct boot_request *req, struct boot_entry *out,
                char *errmsg)
{
    if (!req || !req->kernel_path)
        return kiln_fail(errmsg, EINVAL, "no kernel given");
    struct boot_input in = {.cmdline = req->cmdline ? req->cmdline : "",
                            .rsdp_addr = req->rsdp_addr};
    int ret = read_image(gm, "kernel", req->kernel_path, ENOEXEC, &in.kernel, errmsg);
    if (!ret && req->initrd_path)
        ret = read_image(gm, "initrd", req->initrd_path, EINVAL, &in.initrd, errmsg);
    if (!ret)
        ret = dispatch(gm, &in, out, errmsg);
    free((void *)in.kernel.data);
    free((void *)in.initrd.data);
    return ret;
}

static struct boot_input memory_input(const char *name, const uint8_t *img, size_t len,
                                      const uint8_t *initrd, size_t initrd_len, const char *cmdline)
{
    struct boot_input in = {
        .kernel = {.name = name ? name : IN_MEMORY_NAME, .data = img, .len = len},
        .cmdline = cmdline ? cmdline : "",
    };
    /* An empty initrd is no initrd. */
    if (initrd && initrd_len)
        in.initrd = (struct boot_blob){.name = IN_MEMORY_NAME, .data = initrd, .len = initrd_len};
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
