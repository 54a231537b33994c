/* pci.c: PCI configuration access through ports 0xcf8/0xcfc for kiln's test guests. */
#include "pci.h"
#include "guest.h"

#define PCI_CONF_ADDR 0xcf8
#define PCI_CONF_DATA 0xcfc
/* Capability lists are walked at most this far (a loop in a broken list must not hang). */
#define PCI_MAX_CAPS 48

static void select_reg(unsigned slot, unsigned reg)
{
    outl(PCI_CONF_ADDR, 0x80000000u | slot << 11 | (reg & 0xfc));
}

uint32_t pci_read32(unsigned slot, unsigned reg)
{
    select_reg(slot, reg);
    return inl(PCI_CONF_DATA);
}

uint16_t pci_read16(unsigned slot, unsigned reg)
{
    select_reg(slot, reg);
    return inw(PCI_CONF_DATA + (reg & 2));
}

uint8_t pci_read8(unsigned slot, unsigned reg)
{
    select_reg(slot, reg);
    return inb(PCI_CONF_DATA + (reg & 3));
}

void pci_write32(unsigned slot, unsigned reg, uint32_t v)
{
    select_reg(slot, reg);
    outl(PCI_CONF_DATA, v);
}

void pci_write16(unsigned slot, unsigned reg, uint16_t v)
{
    select_reg(slot, reg);
    outw(PCI_CONF_DATA + (reg & 2), v);
}

unsigned pci_find(uint32_t id, unsigned first)
{
    unsigned slot;
    for (slot = first; slot < PCI_SLOTS; slot++)
        if (pci_read32(slot, PCI_ID) == id)
            break;
    return slot;
}

unsigned pci_find_cap(unsigned slot, uint8_t cap_id)
{
    unsigned pos = pci_read8(slot, PCI_CAP_PTR);
    for (int n = 0; pos && n < PCI_MAX_CAPS; n++) {
        if (pci_read8(slot, pos) == cap_id)
            return pos;
        pos = pci_read8(slot, pos + 1);
    }
    return 0;
}

uint64_t pci_bar_addr(unsigned slot, unsigned bar)
{
    uint32_t lo = pci_read32(slot, PCI_BAR0 + 4 * bar);
    uint64_t addr = lo & ~0xfu;
    if ((lo & 6) == 4) /* 64-bit */
        addr |= (uint64_t)pci_read32(slot, PCI_BAR0 + 4 * bar + 4) << 32;
    return addr;
}
