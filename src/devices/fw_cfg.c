/* fw_cfg.c: the fw_cfg device: selector, data and DMA ports over a table of items and files. */
#include "devices/fw_cfg.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "platform/aml.h"
#include "state.h"

/* What a read of the DMA register gives: "QEMU CFG", so firmware can tell DMA is there. */
static const uint8_t dma_signature[8] = {'Q', 'E', 'M', 'U', ' ', 'C', 'F', 'G'};

#define FW_CFG_DIR_ENTRY 64 /* be32 size, be16 select, be16 reserved, name[56] */

struct item {
    uint8_t *data;
    uint32_t len;
};

struct fw_cfg {
    struct device dev;
    const struct guest_mem *gm;
    const struct kiln_log *log;
    pthread_mutex_t lock; /* any vCPU may use the ports */
    struct item fixed[FW_CFG_FILE_FIRST];
    struct item files[FW_CFG_MAX_FILES];
    char names[FW_CFG_MAX_FILES][FW_CFG_NAME_MAX];
    unsigned nfiles;
    /* Guest-visible state: the selected item, the read position in it, the DMA high half. */
    uint16_t selected;
    uint32_t offset;
    uint32_t dma_high;
};

/*
 * The item a selector names; keys that name nothing read as empty. Bit 15 picks the
 * architecture-local keys, a namespace of their own in which kiln has nothing: SeaBIOS reads
 * x86's legacy ACPI table list there (0x8000) and, when it was taken for key 0 ("QEMU"), made
 * 17745 empty table entries of it, one DMA exit each, and then searched them on every lookup.
 */
static const struct item *lookup(const struct fw_cfg *f, uint16_t key)
{
    static const struct item none = {NULL, 0};
    if (key & FW_CFG_ARCH_LOCAL)
        return &none;
    key &= ~FW_CFG_WRITE_CHANNEL;
    if (key < FW_CFG_FILE_FIRST)
        return &f->fixed[key];
    if ((unsigned)(key - FW_CFG_FILE_FIRST) < f->nfiles)
        return &f->files[key - FW_CFG_FILE_FIRST];
    return &none;
}

static void select_item(struct fw_cfg *f, uint16_t key)
{
    f->selected = key;
    f->offset = 0;
}

/* Copy len bytes of the selected item from the read position to dst (zeros past its end). */
static void take(struct fw_cfg *f, uint8_t *dst, uint32_t len)
{
    const struct item *it = lookup(f, f->selected);
    uint32_t avail = f->offset < it->len ? it->len - f->offset : 0;
    uint32_t n = len < avail ? len : avail;
    if (n)
        memcpy(dst, it->data + f->offset, n);
    memset(dst + n, 0, len - n);
    f->offset = len > UINT32_MAX - f->offset ? UINT32_MAX : f->offset + len;
}

/*
 * One DMA request at guest address addr: { be32 control, be32 length, be64 address }. Every
 * address comes from the guest: the request and the buffer must each lie in guest RAM, or the
 * request fails with the error bit. Nothing is writable, so a write request fails too.
 */
static void dma_run(struct fw_cfg *f, uint64_t addr)
{
    uint8_t *req = gpa_to_host(f->gm, addr, 16);
    if (!req) {
        klog(f->log, KILN_LOG_WARN, "fw_cfg: DMA request at 0x%llx is outside guest RAM",
             (unsigned long long)addr);
        return;
    }
    uint32_t control = (uint32_t)be_get(req, 4), len = (uint32_t)be_get(req + 4, 4);
    uint64_t buf = be_get(req + 8, 8);
    if (control & FW_CFG_DMA_SELECT)
        select_item(f, (uint16_t)(control >> 16));
    bool ok = true;
    if (control & FW_CFG_DMA_READ) {
        uint8_t *dst = gpa_to_host(f->gm, buf, len);
        ok = dst != NULL;
        if (ok)
            take(f, dst, len);
    } else if (control & FW_CFG_DMA_WRITE) {
        ok = false;
    } else if (control & FW_CFG_DMA_SKIP) {
        f->offset = len > UINT32_MAX - f->offset ? UINT32_MAX : f->offset + len;
    }
    if (!ok)
        klog(f->log, KILN_LOG_WARN, "fw_cfg: DMA %s of %u bytes at 0x%llx refused",
             control & FW_CFG_DMA_READ ? "read" : "write", len, (unsigned long long)buf);
    be_put(req, 4, ok ? 0 : FW_CFG_DMA_ERROR);
}

/* Region 0: selector (0) and data (1) ports; region 1: the DMA register. */
static void fw_cfg_read(struct device *d, unsigned region, uint64_t off, uint8_t *data,
                        uint32_t len)
{
    struct fw_cfg *f = (struct fw_cfg *)d;
    memset(data, 0, len);
    pthread_mutex_lock(&f->lock);
    if (region == 0 && off == 1)
        take(f, data, len);
    else if (region == 1)
        for (uint32_t i = 0; i < len && off + i < sizeof(dma_signature); i++)
            data[i] = dma_signature[off + i];
    pthread_mutex_unlock(&f->lock);
}

static void fw_cfg_write(struct device *d, unsigned region, uint64_t off, const uint8_t *data,
                         uint32_t len)
{
    struct fw_cfg *f = (struct fw_cfg *)d;
    pthread_mutex_lock(&f->lock);
    if (region == 0 && off == 0 && len >= 2) {
        select_item(f, (uint16_t)le_get(data, 2));
    } else if (region == 1 && len == 4 && off == 0) {
        f->dma_high = (uint32_t)be_get(data, 4);
    } else if (region == 1 && len == 4 && off == 4) {
        dma_run(f, (uint64_t)f->dma_high << 32 | (uint32_t)be_get(data, 4));
        f->dma_high = 0;
    }
    /* Anything else (data port writes, odd widths) is ignored, as on QEMU. */
    pthread_mutex_unlock(&f->lock);
}

static int fw_cfg_reset(struct device *d)
{
    struct fw_cfg *f = (struct fw_cfg *)d;
    pthread_mutex_lock(&f->lock);
    select_item(f, 0);
    f->dma_high = 0;
    pthread_mutex_unlock(&f->lock);
    return 0;
}

/* Linux's qemu_fw_cfg driver binds to QEMU0002 and finds the ports in _CRS. */
static void fw_cfg_describe(const struct device *d, struct aml *a)
{
    (void)d;
    size_t dev = aml_device_open(a, "FWCF");
    aml_name(a, "_HID");
    aml_string(a, "QEMU0002");
    aml_name(a, "_STA");
    aml_integer(a, 0x0b);
    aml_crs_io(a, FW_CFG_PORT_SELECTOR, 0x0c, -1);
    aml_close(a, dev);
}

static void fw_cfg_destroy(struct device *d)
{
    struct fw_cfg *f = (struct fw_cfg *)d;
    for (unsigned i = 0; i < FW_CFG_FILE_FIRST; i++)
        free(f->fixed[i].data);
    for (unsigned i = 0; i < f->nfiles; i++)
        free(f->files[i].data);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* CRC-32 of every item, with its key and length: the contents the guest can read. */
static uint32_t contents_crc(const struct fw_cfg *f)
{
    uLong crc = crc32(0, NULL, 0);
    for (unsigned key = 0; key < FW_CFG_FILE_FIRST + f->nfiles; key++) {
        const struct item *it = lookup(f, (uint16_t)key);
        const uint32_t head[2] = {key, it->len};
        crc = crc32(crc, (const Bytef *)head, sizeof(head));
        if (it->len)
            crc = crc32(crc, it->data, it->len);
    }
    return (uint32_t)crc;
}

/*
 * The selector, the read position and the DMA high half. The items are not saved: the restored
 * VM makes them again from its configuration, and their CRC-32 here must match, so a guest in
 * the middle of reading a file goes on reading the same bytes.
 */
static int fw_cfg_save(const struct device *d, struct device_state *st)
{
    struct fw_cfg *f = (struct fw_cfg *)d;
    pthread_mutex_lock(&f->lock);
    state_put_u32(st, f->selected);
    state_put_u32(st, f->offset);
    state_put_u32(st, f->dma_high);
    state_put_u32(st, contents_crc(f));
    pthread_mutex_unlock(&f->lock);
    return st->err ? -st->err : 0;
}

static int fw_cfg_restore(struct device *d, struct device_state *st)
{
    struct fw_cfg *f = (struct fw_cfg *)d;
    uint32_t selected = state_get_u32(st), offset = state_get_u32(st);
    uint32_t dma_high = state_get_u32(st), crc = state_get_u32(st);
    if (st->err || selected > UINT16_MAX)
        return -EINVAL;
    pthread_mutex_lock(&f->lock);
    int ret = crc == contents_crc(f) ? 0 : -EINVAL;
    if (ret == 0) {
        f->selected = (uint16_t)selected;
        f->offset = offset;
        f->dma_high = dma_high;
    }
    pthread_mutex_unlock(&f->lock);
    return ret;
}

static const struct device_ops fw_cfg_ops = {
    .read = fw_cfg_read,
    .write = fw_cfg_write,
    .save = fw_cfg_save,
    .restore = fw_cfg_restore,
    .reset = fw_cfg_reset,
    .destroy = fw_cfg_destroy,
    .describe = fw_cfg_describe,
};

static int set_item(struct item *it, const void *data, uint32_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -ENOMEM;
    if (len)
        memcpy(copy, data, len);
    free(it->data);
    *it = (struct item){copy, len};
    return 0;
}

/* The directory item: every file's size, selector and name, in the order they were added. */
static int write_directory(struct fw_cfg *f)
{
    uint8_t dir[4 + FW_CFG_MAX_FILES * FW_CFG_DIR_ENTRY] = {0};
    be_put(dir, 4, f->nfiles);
    for (unsigned i = 0; i < f->nfiles; i++) {
        uint8_t *e = dir + 4 + i * FW_CFG_DIR_ENTRY;
        be_put(e, 4, f->files[i].len);
        e[4] = (uint8_t)((FW_CFG_FILE_FIRST + i) >> 8);
        e[5] = (uint8_t)(FW_CFG_FILE_FIRST + i);
        memcpy(e + 8, f->names[i], FW_CFG_NAME_MAX);
    }
    return set_item(&f->fixed[FW_CFG_FILE_DIR], dir, 4 + f->nfiles * FW_CFG_DIR_ENTRY);
}

int fw_cfg_set(struct fw_cfg *f, uint16_t key, const void *data, uint32_t len)
{
    if (key >= FW_CFG_FILE_FIRST || key == FW_CFG_FILE_DIR)
        return -EINVAL;
    return set_item(&f->fixed[key], data, len);
}

int fw_cfg_add_file(struct fw_cfg *f, const char *name, const void *data, uint32_t len)
{
    size_t n = strlen(name);
    if (n == 0 || n >= FW_CFG_NAME_MAX)
        return -ENAMETOOLONG;
    for (unsigned i = 0; i < f->nfiles; i++)
        if (strcmp(f->names[i], name) == 0)
            return -EEXIST;
    if (f->nfiles == FW_CFG_MAX_FILES)
        return -ENOSPC;
    int ret = set_item(&f->files[f->nfiles], data, len);
    if (ret < 0)
        return ret;
    memset(f->names[f->nfiles], 0, FW_CFG_NAME_MAX);
    memcpy(f->names[f->nfiles], name, n);
    f->nfiles++;
    return write_directory(f);
}

int fw_cfg_create(const struct guest_mem *gm, const struct kiln_log *log, struct fw_cfg **out)
{
    struct fw_cfg *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->dev = (struct device){.name = "fw_cfg", .ops = &fw_cfg_ops};
    device_add_range(&f->dev, DEVICE_PIO, FW_CFG_PORT_SELECTOR, 2);
    device_add_range(&f->dev, DEVICE_PIO, FW_CFG_PORT_DMA, 8);
    f->gm = gm;
    f->log = log;
    pthread_mutex_init(&f->lock, NULL);
    const uint8_t id[4] = {0x03, 0, 0, 0}; /* traditional interface and DMA */
    int ret = set_item(&f->fixed[FW_CFG_SIGNATURE], "QEMU", 4);
    if (ret == 0)
        ret = set_item(&f->fixed[FW_CFG_ID], id, sizeof(id));
    if (ret == 0)
        ret = write_directory(f);
    if (ret < 0) {
        fw_cfg_destroy(&f->dev);
        return ret;
    }
    *out = f;
    return 0;
}

struct device *fw_cfg_device(struct fw_cfg *f)
{
    return &f->dev;
}
