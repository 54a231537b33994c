/* aml.c: AML encoding of names, integers, strings and package lengths. */
#include "platform/aml.h"

#include <string.h>

void aml_bytes(struct aml *a, const void *data, size_t n)
{
    if (a->overflow || n > a->cap - a->len) {
        a->overflow = true;
        return;
    }
    memcpy(a->buf + a->len, data, n);
    a->len += n;
}

void aml_byte(struct aml *a, uint8_t b)
{
    aml_bytes(a, &b, 1);
}

void aml_le(struct aml *a, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        aml_byte(a, (uint8_t)(v >> (8 * i)));
}

unsigned aml_pkglen_size(unsigned len)
{
    if (len + 1 < 0x40)
        return 1;
    if (len + 2 < 0x1000)
        return 2;
    return len + 3 < 0x100000 ? 3 : 4;
}

size_t aml_open(const struct aml *a)
{
    return a->len;
}

void aml_close(struct aml *a, size_t start)
{
    size_t content = a->len - start;
    unsigned n = aml_pkglen_size((unsigned)content);
    if (a->overflow || n > a->cap - a->len) {
        a->overflow = true;
        return;
    }
    size_t total = content + n;
    memmove(a->buf + start + n, a->buf + start, content);
    if (n == 1) {
        a->buf[start] = (uint8_t)total;
    } else {
        /* Lead byte: count of following bytes in bits 7-6, low nibble of the length. */
        a->buf[start] = (uint8_t)(((n - 1) << 6) | (total & 0xf));
        for (unsigned i = 1; i < n; i++)
            a->buf[start + i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
    }
    a->len += n;
}

void aml_integer(struct aml *a, uint32_t v)
{
    if (v <= 1) {
        aml_byte(a, (uint8_t)v); /* ZeroOp, OneOp */
    } else if (v <= 0xff) {
        aml_byte(a, 0x0a);
        aml_byte(a, (uint8_t)v);
    } else if (v <= 0xffff) {
        aml_byte(a, 0x0b);
        aml_le(a, v, 2);
    } else {
        aml_byte(a, 0x0c);
        aml_le(a, v, 4);
    }
}

void aml_string(struct aml *a, const char *s)
{
    aml_byte(a, 0x0d); /* StringPrefix */
    aml_bytes(a, s, strlen(s) + 1);
}

void aml_nameseg(struct aml *a, const char *name)
{
    char seg[4] = {'_', '_', '_', '_'};
    memcpy(seg, name, strnlen(name, 4));
    aml_bytes(a, seg, 4);
}

void aml_name(struct aml *a, const char *name)
{
    aml_byte(a, 0x08); /* NameOp */
    aml_nameseg(a, name);
}

/* Name(_CRS, ResourceTemplate() { IO(Decode16, port, port, 1, len) [IRQNoFlags() {irq}] }) */
void aml_crs_io(struct aml *a, uint16_t port, uint8_t len, int irq)
{
    uint8_t desc[16];
    size_t n = 0;
    const uint8_t io[] = {
        0x47, 0x01, (uint8_t)port, (uint8_t)(port >> 8), (uint8_t)port, (uint8_t)(port >> 8),
        0x01, len};
    memcpy(desc, io, sizeof(io));
    n += sizeof(io);
    if (irq >= 0) {
        uint16_t mask = (uint16_t)(1u << irq);
        desc[n++] = 0x22;
        desc[n++] = (uint8_t)mask;
        desc[n++] = (uint8_t)(mask >> 8);
    }
    desc[n++] = 0x79; /* end tag, checksum 0 = "not checked" */
    desc[n++] = 0x00;
    aml_name(a, "_CRS");
    aml_byte(a, 0x11); /* BufferOp */
    size_t pkg = aml_open(a);
    aml_integer(a, (uint32_t)n);
    aml_bytes(a, desc, n);
    aml_close(a, pkg);
}

void aml_crs_ext_irq(struct aml *a, uint32_t gsi, bool edge)
{
    uint8_t buf[16];
    struct aml res = {.buf = buf, .cap = sizeof(buf)};
    aml_res_ext_irq(&res, gsi, (uint8_t)(AML_IRQ_CONSUMER | (edge ? AML_IRQ_EDGE : 0)));
    aml_crs(a, &res);
}

/* A large resource item's header: its tag, then the length of what follows, 16 bits. */
static void res_large(struct aml *res, uint8_t tag, uint16_t len)
{
    aml_byte(res, tag);
    aml_le(res, len, 2);
}

void aml_res_memory32_fixed(struct aml *res, uint32_t base, uint32_t len, bool writable)
{
    res_large(res, 0x86, 9);
    aml_byte(res, writable ? 0x01 : 0x00); /* information: bit 0 is _RW */
    aml_le(res, base, 4);
    aml_le(res, len, 4);
}

void aml_res_ext_irq(struct aml *res, uint32_t gsi, uint8_t flags)
{
    res_large(res, 0x89, 6);
    aml_byte(res, flags);
    aml_byte(res, 1); /* interrupt table length */
    aml_le(res, gsi, 4);
}

void aml_crs(struct aml *a, const struct aml *res)
{
    if (res->overflow) {
        a->overflow = true;
        return;
    }
    aml_name(a, "_CRS");
    aml_byte(a, 0x11); /* BufferOp */
    size_t pkg = aml_open(a);
    aml_integer(a, (uint32_t)res->len + 2);
    aml_bytes(a, res->buf, res->len);
    aml_byte(a, 0x79); /* End Tag; its checksum 0 means "not checked" */
    aml_byte(a, 0x00);
    aml_close(a, pkg);
}

size_t aml_device_open(struct aml *a, const char *name)
{
    aml_byte(a, 0x5b); /* ExtOpPrefix */
    aml_byte(a, 0x82); /* DeviceOp */
    size_t pkg = aml_open(a);
    aml_nameseg(a, name);
    return pkg;
}
