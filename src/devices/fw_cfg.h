/* fw_cfg.h: QEMU's firmware configuration device: items and files firmware reads at boot. */
#ifndef KILN_FW_CFG_H
#define KILN_FW_CFG_H

#include <stdint.h>

#include "device.h"
#include "memory.h"
#include "util.h"

/*
 * The x86 I/O interface, where SeaBIOS and OVMF look for it: a 16-bit selector at 0x510, the
 * data byte at 0x511, and the DMA address register (big-endian, high half at 0x514, low half at
 * 0x518; writing the low half starts the transfer) at 0x514.
 */
#define FW_CFG_PORT_SELECTOR 0x510
#define FW_CFG_PORT_DATA 0x511
#define FW_CFG_PORT_DMA 0x514

/* Fixed items (the rest of what firmware needs comes as named files). */
#define FW_CFG_SIGNATURE 0x00 /* "QEMU" */
#define FW_CFG_ID 0x01        /* interface features: bit 0 traditional, bit 1 DMA */
#define FW_CFG_RAM_SIZE 0x03  /* le64 */
#define FW_CFG_NB_CPUS 0x05   /* le16 */
#define FW_CFG_BOOT_MENU 0x0e /* le16: 0 skips SeaBIOS's "Press ESC for boot menu" wait */
#define FW_CFG_MAX_CPUS 0x0f  /* le16 */
#define FW_CFG_FILE_DIR 0x19  /* be32 count, then one 64-byte entry per file */
#define FW_CFG_FILE_FIRST 0x20
#define FW_CFG_WRITE_CHANNEL 0x4000 /* selector bit: a write channel (kiln has none) */
#define FW_CFG_ARCH_LOCAL 0x8000    /* selector bit: the architecture's own keys (kiln has none) */

#define FW_CFG_MAX_FILES 32
#define FW_CFG_NAME_MAX 56 /* bytes, with the terminating NUL */

/* Control bits of a DMA request (struct fw_cfg_dma in guest memory, big-endian). */
#define FW_CFG_DMA_ERROR 0x01
#define FW_CFG_DMA_READ 0x02
#define FW_CFG_DMA_SKIP 0x04
#define FW_CFG_DMA_SELECT 0x08
#define FW_CFG_DMA_WRITE 0x10

struct fw_cfg;

/* A device with the signature, ID and file directory; add items before the guest runs. */
int fw_cfg_create(const struct guest_mem *gm, const struct kiln_log *log, struct fw_cfg **out);
struct device *fw_cfg_device(struct fw_cfg *f);

/* Set fixed item key (below FW_CFG_FILE_FIRST) to a copy of data. Returns 0 or -errno. */
int fw_cfg_set(struct fw_cfg *f, uint16_t key, const void *data, uint32_t len);
/* Add the file name with a copy of data. -EEXIST, -ENAMETOOLONG, -ENOSPC or -ENOMEM. */
int fw_cfg_add_file(struct fw_cfg *f, const char *name, const void *data, uint32_t len);

#endif
