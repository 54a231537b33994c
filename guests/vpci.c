/* vpci.c: a tiny virtio-pci driver: reads and writes a virtio-blk disk with MSI-X, then INTx. */
#include "apic.h"
#include "guest.h"
#include "pci.h"
#include "vp_common.h"

#define NEW_BAR0 0xe0100000ULL

int guest_main(void *boot_info)
{
    (void)boot_info;
    unsigned apic = mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24;
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    vp_idt_setup("vpci");
    mmio_write32(LAPIC_BASE + LAPIC_SVR, SVR_ENABLE | VEC_SPURIOUS);
    mmio_write32(LAPIC_BASE + LAPIC_LVT_LINT0, LVT_MASKED);

    GUEST_ASSERT((pci_read32(0, PCI_CLASS) >> 16) == 0x0600); /* host bridge */
    unsigned slot = pci_find(VIRTIO_PCI_ID(VIRTIO_ID_BLOCK), 1);
    GUEST_ASSERT(slot < PCI_SLOTS);
    GUEST_ASSERT(pci_read32(slot + 1, PCI_ID) == 0xffffffff);
    /* Size BAR 0 like Linux, then move it: the doorbell must follow. */
    uint16_t cmd = pci_read16(slot, PCI_COMMAND);
    GUEST_ASSERT(cmd & PCI_COMMAND_MEMORY);
    pci_write16(slot, PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY);
    uint32_t lo = pci_read32(slot, PCI_BAR0), hi = pci_read32(slot, PCI_BAR0 + 4);
    pci_write32(slot, PCI_BAR0, 0xffffffff);
    pci_write32(slot, PCI_BAR0 + 4, 0xffffffff);
    GUEST_ASSERT(pci_read32(slot, PCI_BAR0) == (0xffffc000u | 4) &&
                 pci_read32(slot, PCI_BAR0 + 4) == 0xffffffff);
    pci_write32(slot, PCI_BAR0, lo);
    pci_write32(slot, PCI_BAR0 + 4, hi);
    pci_write32(slot, PCI_BAR0, (uint32_t)NEW_BAR0);
    pci_write16(slot, PCI_COMMAND, cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    uint64_t msix_table = pci_read32(slot, PCI_BAR0 + 8) & ~0xfu; /* BAR 2 */
    virtio_pci_init(&vp_dev, slot);
    GUEST_ASSERT(vp_dev.common >= NEW_BAR0 && vp_dev.notify_mult == 0);
    unsigned msix_cap = pci_find_cap(slot, PCI_CAP_ID_MSIX);
    GUEST_ASSERT(msix_cap);
    uint64_t cap = virtio_cfg_read32(&vp_dev, 0) | (uint64_t)virtio_cfg_read32(&vp_dev, 4) << 32;
    serial_puts("vpci: slot ");
    serial_put_dec(slot);
    serial_puts(" capacity ");
    serial_put_dec(cap);
    serial_puts(" line ");
    serial_put_dec(pci_read8(slot, PCI_INTERRUPT_LINE));
    serial_putc('\n');

    /* MSI-X: masked while programmed, queue 0 on vector 0, then unmasked. */
    pci_write16(slot, msix_cap + 2, 0xc000);
    mmio_write32(msix_table + 0, 0xfee00000u | apic << 12);
    mmio_write32(msix_table + 4, 0);
    mmio_write32(msix_table + 8, VEC_MSIX);
    mmio_write32(msix_table + 12, 0);
    /* INTx off, as Linux does with MSI-X */
    pci_write16(slot, PCI_COMMAND, pci_read16(slot, PCI_COMMAND) | PCI_COMMAND_INTX_DISABLE);
    vp_blk_init(0);
    pci_write16(slot, msix_cap + 2, 0x8000);
    vp_blk_io_round(&vp_msix_count, "KILNPCI!", "msix-was-here");
    serial_puts("vpci: msix ok, interrupts ");
    serial_put_dec(vp_msix_count);
    serial_putc('\n');

    /* INTx: MSI-X off, the level line on the GSI the Interrupt Line register names. */
    pci_write16(slot, msix_cap + 2, 0);
    virtio_reset(&vp_dev); /* reset first: MSI-X mode left ISR bits nobody read */
    pci_write16(slot, PCI_COMMAND, pci_read16(slot, PCI_COMMAND) & ~PCI_COMMAND_INTX_DISABLE);
    /* Level, active low: as Linux. */
    vp_ioapic_route(pci_read8(slot, PCI_INTERRUPT_LINE), apic, 1u << 15 | 1u << 13);
    vp_blk_init(VIRTIO_MSI_NO_VECTOR);
    vp_blk_io_round(&vp_intx_count, "KILNPCI!", "intx-was-here");
    serial_puts("vpci: intx ok, interrupts ");
    serial_put_dec(vp_intx_count);
    serial_puts(" spurious ");
    serial_put_dec(vp_intx_spurious);
    serial_putc('\n');
    GUEST_ASSERT(vp_msix_count == 3);
    return 0;
}
