/* pci.h: PCI configuration access (mechanism #1, ports 0xcf8/0xcfc) on bus 0, function 0. */
#ifndef KILN_GUEST_PCI_H
#define KILN_GUEST_PCI_H

#include <stdint.h>

#define PCI_SLOTS 32

/* Configuration space registers and capability IDs the guests use. */
#define PCI_ID 0x00 /* vendor ID (low 16 bits), device ID (high 16) */
#define PCI_COMMAND 0x04
#define PCI_CLASS 0x08 /* revision, then prog-if, subclass, class */
#define PCI_BAR0 0x10
#define PCI_CAP_PTR 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_CAP_ID_VENDOR 0x09
#define PCI_CAP_ID_MSIX 0x11

uint32_t pci_read32(unsigned slot, unsigned reg);
uint16_t pci_read16(unsigned slot, unsigned reg);
uint8_t pci_read8(unsigned slot, unsigned reg);
void pci_write32(unsigned slot, unsigned reg, uint32_t v);
void pci_write16(unsigned slot, unsigned reg, uint16_t v);

/* The first slot from `first` on whose ID register reads `id` (device << 16 | vendor), or
 * PCI_SLOTS if there is none. */
unsigned pci_find(uint32_t id, unsigned first);

/* The offset of the first capability with this ID, or 0 if the function has none. */
unsigned pci_find_cap(unsigned slot, uint8_t cap_id);

/* The address a memory BAR (0-5) decodes, 64-bit BARs included. */
uint64_t pci_bar_addr(unsigned slot, unsigned bar);

#endif
