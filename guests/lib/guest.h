/* guest.h: the tiny freestanding library shared by kiln's test guests (serial, exit, asserts). */
#ifndef KILN_GUEST_H
#define KILN_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Ports of the devices kiln emulates. */
#define COM1 0x3f8
#define EXIT_PORT 0x5f0
#define I8042_CMD 0x64

/*
 * Statuses the guests end with on their own failures. Chosen apart from the values tests pass
 * through the exit device on purpose (0, 1, 7) and from kiln's own codes (123-126).
 */
#define GUEST_EXIT_ASSERT 100 /* GUEST_ASSERT failed */
#define GUEST_EXIT_USAGE 101  /* bad or missing command-line argument */

/* Offsets into the Linux zero page (struct boot_params) that the guests read. */
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21c
#define BP_CMD_LINE_PTR 0x228
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}

static inline void outw(uint16_t port, uint16_t v)
{
    __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint16_t inw(uint16_t port)
{
    uint16_t v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}

static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}

static inline void cpu_relax(void)
{
    __asm__ volatile("pause" ::: "memory");
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

/* The initial APIC ID of the executing CPU (CPUID leaf 1, EBX[31:24]). */
static inline unsigned cpu_apic_id(void)
{
    uint32_t a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    return b >> 24;
}

static inline uint32_t mmio_read32(uint64_t addr)
{
    return *(volatile uint32_t *)(uintptr_t)addr;
}

static inline void mmio_write32(uint64_t addr, uint32_t v)
{
    *(volatile uint32_t *)(uintptr_t)addr = v;
}

/* Little-endian loads from guest-physical memory (identity mapped, any alignment). */
static inline uint8_t phys_read8(uint64_t addr)
{
    return *(const volatile uint8_t *)(uintptr_t)addr;
}

static inline uint16_t phys_read16(uint64_t addr)
{
    return *(const volatile uint16_t *)(uintptr_t)addr;
}

static inline uint32_t phys_read32(uint64_t addr)
{
    return *(const volatile uint32_t *)(uintptr_t)addr;
}

static inline uint64_t phys_read64(uint64_t addr)
{
    return *(const volatile uint64_t *)(uintptr_t)addr;
}

/* A test-and-set lock; xchg is locked implicitly. */
typedef volatile int spinlock_t;

static inline void spin_lock(spinlock_t *l)
{
    while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
        while (__atomic_load_n(l, __ATOMIC_RELAXED))
            cpu_relax();
}

static inline void spin_unlock(spinlock_t *l)
{
    __atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* COM1, polled. serial_init() runs before guest_main(). */
void serial_init(void);
void serial_putc(char c);
void serial_puts(const char *s);
void serial_put_dec(uint64_t v);
void serial_put_hex(uint64_t v); /* "0x" and at least one digit */
/* One received byte, or -1 if none arrived within max_polls reads of the line status register. */
int serial_getc(uint64_t max_polls);

/* End the VM through kiln's exit device with this status; never returns. */
__attribute__((noreturn)) void guest_exit(unsigned status);

/* Print "ASSERT FAILED: file:line: expr" and exit with GUEST_EXIT_ASSERT. */
__attribute__((noreturn)) void guest_assert_fail(const char *file, int line, const char *expr);
#define GUEST_ASSERT(cond)                                                                         \
    do {                                                                                           \
        if (!(cond))                                                                               \
            guest_assert_fail(__FILE__, __LINE__, #cond);                                          \
    } while (0)

/* Halt this CPU for good with interrupts off (an AP that has nothing left to do). */
__attribute__((noreturn)) void cpu_halt_forever(void);

/*
 * The value of "key=VALUE" in a space-separated command line, copied NUL-terminated into buf
 * (truncated to size - 1 bytes). Returns false if the key is absent.
 */
bool cmdline_get(const char *cmdline, const char *key, char *buf, size_t size);

/* Parse a whole decimal string; false on anything else or on overflow. */
bool parse_u64(const char *s, uint64_t *out);

/* The command line from a Linux zero page ("" if none). */
const char *bootparams_cmdline(const void *zero_page);

/* Entry point every guest supplies: boot_info is rsi (zero page) or, for PVH, ebx (start info). */
int guest_main(void *boot_info);

/* The compiler may emit calls to these even in freestanding code. */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#endif
