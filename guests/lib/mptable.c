/* mptable.c: finds the MP configuration table kiln writes and walks its entries. */
#include "mptable.h"

#include "guest.h"

#define MP_FLOAT_SIG 0x5f504d5fu  /* "_MP_" */
#define MP_CONFIG_SIG 0x504d4350u /* "PCMP" */
#define MP_CONFIG_HEADER_SIZE 0x2c

static uint8_t checksum(uint64_t addr, uint64_t len)
{
    uint8_t sum = 0;
    for (uint64_t i = 0; i < len; i++)
        sum += phys_read8(addr + i);
    return sum;
}

/* The floating pointer structure in [start, end), 16-byte aligned and checksummed; or 0. */
static uint64_t mp_scan(uint64_t start, uint64_t end)
{
    for (uint64_t a = start; a + 16 <= end; a += 16) {
        if (phys_read32(a) != MP_FLOAT_SIG)
            continue;
        uint64_t len = phys_read8(a + 8) * 16ULL;
        if (len >= 16 && a + len <= end && checksum(a, len) == 0)
            return a;
    }
    return 0;
}

uint64_t mp_config_table(void)
{
    /* Where the specification says to look: the first KiB of the EBDA, then the BIOS ROM. */
    uint64_t fp = mp_scan(0x9fc00, 0xa0000);
    if (!fp)
        fp = mp_scan(0xf0000, 0x100000);
    if (!fp) {
        serial_puts("mptable: no MP floating pointer\n");
        return 0;
    }
    uint64_t cfg = phys_read32(fp + 4);
    if (!cfg || phys_read32(cfg) != MP_CONFIG_SIG) {
        serial_puts("mptable: no MP configuration table\n");
        return 0;
    }
    uint16_t len = phys_read16(cfg + 4);
    if (len < MP_CONFIG_HEADER_SIZE || checksum(cfg, len) != 0) {
        serial_puts("mptable: bad MP configuration table length or checksum\n");
        return 0;
    }
    return cfg;
}

uint64_t mp_entries_start(uint64_t cfg)
{
    return cfg + MP_CONFIG_HEADER_SIZE;
}

uint64_t mp_entries_end(uint64_t cfg)
{
    return cfg + phys_read16(cfg + 4);
}

uint64_t mp_entry_next(uint64_t e)
{
    uint8_t type = phys_read8(e);
    /* Processor entries are 20 bytes; the other four types 8; nothing else is defined. */
    GUEST_ASSERT(type <= MP_ENTRY_LINT);
    return e + (type == MP_ENTRY_PROCESSOR ? 20 : 8);
}
