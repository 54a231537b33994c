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

#endif
