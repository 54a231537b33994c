/* firmware.c: reads a BIOS image, checks it looks like one, and puts its legacy part in RAM. */
#include "boot/firmware.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "boot/bootparams.h"
#include "util.h"

/* The reset vector: the CPU's first instruction, 16 bytes below 4 GiB, jumps into the BIOS. */
static bool has_reset_vector(const uint8_t *image, size_t size)
{
    uint8_t op = image[size - 16];
    return op == 0xea /* far jmp */ || op == 0xe9 /* near jmp */ || op == 0xeb /* short jmp */;
}

/* A fresh page-aligned, writable copy of size bytes (the caller fills it), or -errno. */
static int alloc_image(size_t size, struct firmware *fw)
{
    fw->image = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fw->image == MAP_FAILED) {
        fw->image = NULL;
        return -errno;
    }
    fw->size = size;
    return 0;
}

static bool size_ok(size_t size)
{
    return size >= FIRMWARE_MIN_SIZE && size <= FIRMWARE_MAX_SIZE && size % FIRMWARE_MIN_SIZE == 0;
}

static int read_image(const char *path, struct firmware *fw, char *errmsg)
{
    struct boot_blob blob;
    int ret = boot_open("firmware", path, FIRMWARE_MAX_SIZE, "256 KiB", ENOEXEC, &blob, errmsg);
    if (ret == 0 && !size_ok(blob.len))
        ret = kiln_fail(errmsg, ENOEXEC,
                        "firmware '%s': %zu bytes, not a BIOS image (a multiple of 64 KiB)", path,
                        blob.len);
    if (ret == 0 && (ret = alloc_image(blob.len, fw)) < 0)
        kiln_fail(errmsg, -ret, "firmware '%s': %s", path, strerror(-ret));
    if (ret == 0) {
        if ((ret = blob_read(&blob, 0, fw->image, blob.len)) < 0)
            kiln_fail(errmsg, -ret, "firmware '%s': read failed: %s", path, strerror(-ret));
    }
    if (blob.fd >= 0)
        close(blob.fd);
    if (ret == 0 && !has_reset_vector(fw->image, fw->size))
        ret =
            kiln_fail(errmsg, ENOEXEC, "firmware '%s': no reset vector in its last 16 bytes", path);
    return ret;
}

int firmware_load(const struct guest_mem *gm, const char *path, struct firmware *fw,
                  struct boot_entry *entry, char *errmsg)
{
    *fw = (struct firmware){0};
    int ret = read_image(path, fw, errmsg);
    if (ret < 0) {
        firmware_free(fw);
        return ret;
    }
    /* RAM, not ROM, below 1 MiB: what firmware finds after unlocking its shadow copy. */
    size_t legacy = fw->size < FIRMWARE_LEGACY_MAX ? fw->size : FIRMWARE_LEGACY_MAX;
    ret = guest_write(gm, FIRMWARE_LEGACY_END - legacy, fw->image + fw->size - legacy, legacy);
    if (ret < 0) {
        firmware_free(fw);
        return kiln_fail(errmsg, -ret, "firmware '%s': guest RAM ends below 1 MiB", path);
    }
    *entry = (struct boot_entry){.mode = BOOT_MODE_RESET};
    return 0;
}

int firmware_copy(const void *image, size_t size, struct firmware *fw)
{
    *fw = (struct firmware){0};
    if (!size_ok(size) || !has_reset_vector(image, size))
        return -EINVAL;
    int ret = alloc_image(size, fw);
    if (ret == 0)
        memcpy(fw->image, image, size);
    return ret;
}

void firmware_free(struct firmware *fw)
{
    if (fw->image)
        munmap(fw->image, fw->size);
    *fw = (struct firmware){0};
}
