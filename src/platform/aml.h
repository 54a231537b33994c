/* aml.h: a small encoder for ACPI Machine Language, shared by the DSDT's parts. */
#ifndef KILN_AML_H
#define KILN_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Output buffer. Writes past cap set overflow and are dropped; check it once at the end. */
struct aml {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool overflow;
};

void aml_bytes(struct aml *a, const void *data, size_t n);
void aml_byte(struct aml *a, uint8_t b);
/* v as n little-endian bytes. */
void aml_le(struct aml *a, uint64_t v, unsigned n);

/*
 * Package bodies (Device, Scope, Package, Buffer) are written first; aml_open marks where the
 * body starts, aml_close then inserts its PkgLength in front of it.
 */
size_t aml_open(const struct aml *a);
void aml_close(struct aml *a, size_t start);
/* Bytes of an AML PkgLength encoding for a package whose contents are len bytes. */
unsigned aml_pkglen_size(unsigned len);

/* The shortest integer encoding: ZeroOp, OneOp, or Byte/Word/DWord constants. */
void aml_integer(struct aml *a, uint32_t v);
void aml_string(struct aml *a, const char *s);
/* A 4-character name segment, padded with '_'. */
void aml_nameseg(struct aml *a, const char *name);
/* Name(NAME, ...): the caller writes the value right after. */
void aml_name(struct aml *a, const char *name);

/* Device (NAME) { ...: the caller writes the body, then aml_close(a, the value returned). */
size_t aml_device_open(struct aml *a, const char *name);
/* Name(_CRS, ResourceTemplate() { IO(Decode16, port, port, 1, len) [IRQNoFlags() {irq}] }),
 * without the IRQ when irq < 0. */
void aml_crs_io(struct aml *a, uint16_t port, uint8_t len, int irq);
/* Name(_CRS, ResourceTemplate() { Interrupt(ResourceConsumer, Edge|Level, ActiveHigh,
 * Exclusive) {gsi} }). */
void aml_crs_ext_irq(struct aml *a, uint32_t gsi, bool edge);

/*
 * Resource descriptors (ACPI "Resource Data Types for ACPI") go into a scratch struct aml of
 * their own, res, which aml_crs then wraps into Name(_CRS, ResourceTemplate() { ... }).
 */
/* Memory32Fixed(ReadWrite or ReadOnly, base, len): 12 bytes, tag 0x86. */
void aml_res_memory32_fixed(struct aml *res, uint32_t base, uint32_t len, bool writable);

/* Extended Interrupt descriptor flags (byte 3). */
#define AML_IRQ_CONSUMER 0x01   /* ResourceConsumer (0: ResourceProducer) */
#define AML_IRQ_EDGE 0x02       /* Edge (0: Level) */
#define AML_IRQ_ACTIVE_LOW 0x04 /* ActiveLow (0: ActiveHigh) */
#define AML_IRQ_SHARED 0x08     /* Shared (0: Exclusive) */
/* Interrupt(flags) {gsi}: 9 bytes, tag 0x89, one interrupt, no resource source. */
void aml_res_ext_irq(struct aml *res, uint32_t gsi, uint8_t flags);
/* Name(_CRS, Buffer() { res's descriptors, End Tag }); res's overflow carries over to a. */
void aml_crs(struct aml *a, const struct aml *res);

#endif
