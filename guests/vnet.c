/*
 * vnet.c: a tiny polled virtio-net-pci driver. Negotiates VERSION_1, MAC and MRG_RXBUF, prints
 * the MAC from config space, then over RX queue 0 and TX queue 1 (no interrupts) asks for the
 * gateway 10.0.2.2 by ARP and pings it twice, as the guest 10.0.2.15: with 32 bytes of payload
 * (the reply fits one RX buffer, num_buffers 1) and with 1200 (the reply spans two of the 1 KiB
 * RX buffers, num_buffers 2). Answers ARP requests for its own address meanwhile, and ignores
 * every other frame.
 *
 * Exit statuses on failure (the reason is printed first): see the VNET_EXIT_* values.
 */
#include "guest.h"
#include "pci.h"
#include "virtio.h"

#define VNET_EXIT_NO_DEVICE 10 /* no virtio-net-pci function on bus 0 */
#define VNET_EXIT_FEATURES 11  /* a needed feature missing, or FEATURES_OK refused */
#define VNET_EXIT_QUEUES 12    /* fewer than two queues */
#define VNET_EXIT_TX 13        /* a transmitted frame never came back in the used ring */
#define VNET_EXIT_NO_ARP 14    /* no ARP reply from the gateway */
#define VNET_EXIT_BAD_HDR 15   /* a received virtio-net header is wrong (num_buffers, flags) */
#define VNET_EXIT_NO_PING 16   /* no echo reply from the gateway */
#define VNET_EXIT_BAD_PING 17  /* an echo reply with a bad checksum or payload */
#define VNET_EXIT_RX 18        /* the device returned a buffer that was not posted, or overran */

#define VIRTIO_NET_F_MAC (1ULL << 5)
#define VIRTIO_NET_F_MRG_RXBUF (1ULL << 15)
#define NET_HDR_LEN 12 /* struct virtio_net_hdr_v1 */
#define HDR_NUM_BUFFERS 10

#define RXQ 0
#define TXQ 1
#define QUEUE_SIZE 8
#define RX_BUFS 8
/* Small enough that the large echo reply (1254 bytes with the header) takes two buffers. */
#define RX_BUF_LEN 1024
#define RX_RING 0x1000000ULL
#define TX_RING 0x1004000ULL
#define RX_BUF 0x1010000ULL /* RX_BUFS buffers of RX_BUF_LEN */
#define TX_HDR 0x1018000ULL
#define TX_FRAME 0x1018100ULL

/* Per try: the wait for a transmitted frame to be used, and for a reply. */
#define TX_WAIT_TSC 5000000000ULL
#define REPLY_WAIT_TSC 3000000000ULL
#define TRIES 5

#define ETH_HLEN 14
#define ETH_MIN 60
#define ETHERTYPE_IP 0x0800
#define ETHERTYPE_ARP 0x0806
#define ARP_LEN 28
#define IP_HLEN 20
#define ICMP_HLEN 8
#define PING_ID 0x6b6c
#define PING_SMALL 32   /* payload bytes of echo request 1: the reply fits one RX buffer */
#define PING_LARGE 1200 /* and of echo request 2: the reply needs two (num_buffers 2) */
#define FRAME_MAX 1514

static const uint8_t guest_ip[4] = {10, 0, 2, 15};
static const uint8_t gateway_ip[4] = {10, 0, 2, 2};
static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static struct virtio_dev dev;
static struct vring rxq, txq;
static uint8_t mac[6];
static uint8_t gateway_mac[6];
static bool have_gateway_mac;
static unsigned ping_seq;       /* the echo request outstanding */
static bool have_ping_reply;    /* its reply arrived */
static uint16_t rx_num_buffers; /* of the frame being handled */
static unsigned frames_seen, frames_ignored, partial_frames;
static uint8_t rx_frame[FRAME_MAX]; /* a frame gathered from several RX buffers */

__attribute__((noreturn)) static void fail(unsigned status, const char *why)
{
    serial_puts("vnet: FAIL: ");
    serial_puts(why);
    serial_puts(" (device status ");
    serial_put_hex(virtio_get_status(&dev));
    serial_puts(", frames received ");
    serial_put_dec(frames_seen);
    serial_puts(", ignored ");
    serial_put_dec(frames_ignored);
    serial_puts(")\n");
    guest_exit(status);
}

static void put_hex2(uint8_t v)
{
    serial_putc("0123456789abcdef"[v >> 4]);
    serial_putc("0123456789abcdef"[v & 15]);
}

static void put_mac(const uint8_t *m)
{
    for (int i = 0; i < 6; i++) {
        if (i)
            serial_putc(':');
        put_hex2(m[i]);
    }
}

static uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* The Internet checksum of n bytes: 0 over data that includes a correct checksum. */
static uint16_t inet_csum(const uint8_t *p, size_t n)
{
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += get_be16(p + i);
    if (n & 1)
        sum += (uint32_t)p[n - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void post_rx(uint16_t i)
{
    vring_set_desc(&rxq, i, RX_BUF + (uint64_t)i * RX_BUF_LEN, RX_BUF_LEN, VRING_DESC_F_WRITE, 0);
    vring_publish(&rxq, i);
}

/* Transmit the frame built at TX_FRAME (padded to the Ethernet minimum), and wait until the
 * device has used it: header and frame in two descriptors. */
static void send_frame(size_t len)
{
    uint8_t *f = (uint8_t *)(uintptr_t)TX_FRAME;
    if (len < ETH_MIN) {
        memset(f + len, 0, ETH_MIN - len);
        len = ETH_MIN;
    }
    memset((void *)(uintptr_t)TX_HDR, 0, NET_HDR_LEN);
    vring_set_desc(&txq, 0, TX_HDR, NET_HDR_LEN, VRING_DESC_F_NEXT, 1);
    vring_set_desc(&txq, 1, TX_FRAME, (uint32_t)len, 0, 0);
    vring_publish(&txq, 0);
    virtio_notify(&dev, TXQ, &txq);
    uint64_t t0 = rdtsc();
    uint16_t head;
    uint32_t used_len;
    while (!vring_pop_used(&txq, &head, &used_len)) {
        if (rdtsc() - t0 > TX_WAIT_TSC)
            fail(VNET_EXIT_TX, "the device did not use a transmitted frame");
        cpu_relax();
    }
    if (head != 0)
        fail(VNET_EXIT_TX, "the TX used ring names a chain that was not sent");
}

static uint8_t *eth_header(uint8_t *f, const uint8_t *dst, uint16_t type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, mac, 6);
    put_be16(f + 12, type);
    return f + ETH_HLEN;
}

/* An ARP packet (op 1 request, 2 reply) from us to target (mac, ip) sent to dst. */
static void send_arp(uint16_t op, const uint8_t *dst, const uint8_t *tha, const uint8_t *tpa)
{
    uint8_t *f = (uint8_t *)(uintptr_t)TX_FRAME;
    uint8_t *a = eth_header(f, dst, ETHERTYPE_ARP);
    put_be16(a, 1); /* Ethernet */
    put_be16(a + 2, ETHERTYPE_IP);
    a[4] = 6;
    a[5] = 4;
    put_be16(a + 6, op);
    memcpy(a + 8, mac, 6);
    memcpy(a + 14, guest_ip, 4);
    memcpy(a + 18, tha, 6);
    memcpy(a + 24, tpa, 4);
    send_frame(ETH_HLEN + ARP_LEN);
}

static uint8_t ping_byte(unsigned seq, unsigned i)
{
    return (uint8_t)(i * 7 + seq);
}

static unsigned ping_len(unsigned seq)
{
    return seq == 1 ? PING_SMALL : PING_LARGE;
}

static void send_ping(unsigned seq)
{
    unsigned n = ping_len(seq);
    uint8_t *f = (uint8_t *)(uintptr_t)TX_FRAME;
    uint8_t *ip = eth_header(f, gateway_mac, ETHERTYPE_IP);
    memset(ip, 0, IP_HLEN);
    ip[0] = 0x45;
    put_be16(ip + 2, (uint16_t)(IP_HLEN + ICMP_HLEN + n));
    put_be16(ip + 4, 1);      /* identification */
    put_be16(ip + 6, 0x4000); /* don't fragment */
    ip[8] = 64;               /* TTL */
    ip[9] = 1;                /* ICMP */
    memcpy(ip + 12, guest_ip, 4);
    memcpy(ip + 16, gateway_ip, 4);
    put_be16(ip + 10, inet_csum(ip, IP_HLEN));
    uint8_t *icmp = ip + IP_HLEN;
    memset(icmp, 0, ICMP_HLEN);
    icmp[0] = 8; /* echo request */
    put_be16(icmp + 4, PING_ID);
    put_be16(icmp + 6, (uint16_t)seq);
    for (unsigned i = 0; i < n; i++)
        icmp[ICMP_HLEN + i] = ping_byte(seq, i);
    put_be16(icmp + 2, inet_csum(icmp, ICMP_HLEN + n));
    ping_seq = seq;
    send_frame(ETH_HLEN + IP_HLEN + ICMP_HLEN + n);
}

/* A frame must come in as many buffers as it needs (want), with no checksum or GSO flags: none
 * of those features was negotiated. */
static void check_header(const uint8_t *hdr, uint16_t want, const char *what)
{
    uint16_t nb = rx_num_buffers;
    if (nb != want || hdr[0] != 0 || hdr[1] != 0) {
        serial_puts("vnet: ");
        serial_puts(what);
        serial_puts(": header flags ");
        serial_put_dec(hdr[0]);
        serial_puts(" gso_type ");
        serial_put_dec(hdr[1]);
        serial_puts(" num_buffers ");
        serial_put_dec(nb);
        serial_putc('\n');
        fail(VNET_EXIT_BAD_HDR, "bad virtio-net header on a received frame");
    }
}

static bool is_arp(const uint8_t *f, uint32_t len, uint16_t op)
{
    const uint8_t *a = f + ETH_HLEN;
    return len >= ETH_HLEN + ARP_LEN && get_be16(f + 12) == ETHERTYPE_ARP && get_be16(a) == 1 &&
           get_be16(a + 2) == ETHERTYPE_IP && a[4] == 6 && a[5] == 4 && get_be16(a + 6) == op;
}

static void handle_arp_reply(const uint8_t *hdr, const uint8_t *f)
{
    const uint8_t *a = f + ETH_HLEN;
    if (memcmp(a + 14, gateway_ip, 4) != 0 || memcmp(a + 24, guest_ip, 4) != 0 ||
        memcmp(a + 18, mac, 6) != 0) {
        frames_ignored++;
        return;
    }
    check_header(hdr, 1, "ARP reply");
    if (!have_gateway_mac) {
        memcpy(gateway_mac, a + 8, 6);
        have_gateway_mac = true;
        serial_puts("vnet: arp reply from 10.0.2.2 is-at ");
        put_mac(gateway_mac);
        serial_putc('\n');
    }
}

static void handle_ip(const uint8_t *hdr, const uint8_t *f, uint32_t len)
{
    const uint8_t *ip = f + ETH_HLEN;
    if (len < ETH_HLEN + IP_HLEN || ip[0] != 0x45 || ip[9] != 1 ||
        memcmp(ip + 12, gateway_ip, 4) != 0 || memcmp(ip + 16, guest_ip, 4) != 0) {
        frames_ignored++;
        return;
    }
    uint32_t tot = get_be16(ip + 2);
    const uint8_t *icmp = ip + IP_HLEN;
    if (tot < IP_HLEN + ICMP_HLEN || ETH_HLEN + tot > len || icmp[0] != 0 ||
        get_be16(icmp + 4) != PING_ID || get_be16(icmp + 6) != ping_seq || have_ping_reply) {
        frames_ignored++;
        return;
    }
    unsigned n = ping_len(ping_seq);
    check_header(hdr, NET_HDR_LEN + ETH_HLEN + tot > RX_BUF_LEN ? 2 : 1, "echo reply");
    if (inet_csum(ip, IP_HLEN) != 0)
        fail(VNET_EXIT_BAD_PING, "echo reply with a bad IP header checksum");
    if (inet_csum(icmp, tot - IP_HLEN) != 0)
        fail(VNET_EXIT_BAD_PING, "echo reply with a bad ICMP checksum");
    bool same = tot == IP_HLEN + ICMP_HLEN + n;
    for (unsigned i = 0; same && i < n; i++)
        same = icmp[ICMP_HLEN + i] == ping_byte(ping_seq, i);
    if (!same)
        fail(VNET_EXIT_BAD_PING, "echo reply with a payload other than the request's");
    have_ping_reply = true;
    serial_puts("vnet: ping reply from 10.0.2.2 seq ");
    serial_put_dec(ping_seq);
    serial_puts(" bytes ");
    serial_put_dec(n);
    serial_puts(" buffers ");
    serial_put_dec(rx_num_buffers);
    serial_puts(" ttl ");
    serial_put_dec(ip[8]);
    serial_putc('\n');
}

static void handle_frame(const uint8_t *hdr, const uint8_t *f, uint32_t len)
{
    frames_seen++;
    if (len < ETH_HLEN || (memcmp(f, mac, 6) != 0 && memcmp(f, broadcast, 6) != 0)) {
        frames_ignored++;
        return;
    }
    if (is_arp(f, len, 2)) {
        handle_arp_reply(hdr, f);
    } else if (is_arp(f, len, 1) && memcmp(f + ETH_HLEN + 24, guest_ip, 4) == 0) {
        /* Someone (the TAP side's kernel, say) checks on us: answer at once. */
        uint8_t sha[6], spa[4];
        memcpy(sha, f + ETH_HLEN + 8, 6);
        memcpy(spa, f + ETH_HLEN + 14, 4);
        send_arp(2, sha, sha, spa);
    } else if (get_be16(f + 12) == ETHERTYPE_IP) {
        handle_ip(hdr, f, len);
    } else {
        frames_ignored++;
    }
}

static const uint8_t *rx_buf(uint16_t head)
{
    return (const uint8_t *)(uintptr_t)(RX_BUF + (uint64_t)head * RX_BUF_LEN);
}

static void check_used(uint16_t head, uint32_t len)
{
    if (head >= RX_BUFS)
        fail(VNET_EXIT_RX, "the RX used ring names a buffer that was not posted");
    if (len > RX_BUF_LEN)
        fail(VNET_EXIT_RX, "the RX used length exceeds the buffer");
}

/*
 * The other buffers of a frame whose header says num_buffers > 1, gathered after the first's
 * payload in rx_frame; returns the frame's length. A device publishes a frame's buffers in the
 * used ring together (Linux drops a frame whose buffers are not all there): one that is seen
 * half-published is counted in partial_frames.
 */
static uint32_t gather_rx(uint16_t *heads, uint16_t nb, uint32_t first_len)
{
    if (first_len != RX_BUF_LEN)
        fail(VNET_EXIT_RX, "a merged frame whose first buffer is not full");
    if ((uint16_t)(vring_used_idx(&rxq) - rxq.last_used) < nb - 1)
        partial_frames++;
    uint32_t total = first_len - NET_HDR_LEN;
    memcpy(rx_frame, rx_buf(heads[0]) + NET_HDR_LEN, total);
    for (uint16_t i = 1; i < nb; i++) {
        uint64_t t0 = rdtsc();
        uint32_t len;
        while (!vring_pop_used(&rxq, &heads[i], &len)) {
            if (rdtsc() - t0 > TX_WAIT_TSC)
                fail(VNET_EXIT_RX, "the other buffers of a merged frame never came");
            cpu_relax();
        }
        check_used(heads[i], len);
        if (total + len > FRAME_MAX)
            fail(VNET_EXIT_RX, "a merged frame longer than 1514 bytes");
        memcpy(rx_frame + total, rx_buf(heads[i]), len);
        total += len;
    }
    return total;
}

/* Handle received frames until done() holds or `ticks` pass; returns done(). */
static bool poll_rx(bool (*done)(void), uint64_t ticks)
{
    uint64_t t0 = rdtsc();
    while (!done()) {
        uint16_t heads[RX_BUFS];
        uint32_t len;
        if (!vring_pop_used(&rxq, &heads[0], &len)) {
            if (rdtsc() - t0 > ticks)
                return false;
            cpu_relax();
            continue;
        }
        check_used(heads[0], len);
        if (len < NET_HDR_LEN)
            fail(VNET_EXIT_RX, "an RX used length shorter than the virtio-net header");
        const uint8_t *hdr = rx_buf(heads[0]);
        uint16_t nb = (uint16_t)(hdr[HDR_NUM_BUFFERS] | hdr[HDR_NUM_BUFFERS + 1] << 8);
        if (nb == 0 || nb > RX_BUFS)
            fail(VNET_EXIT_RX, "num_buffers out of range");
        rx_num_buffers = nb;
        if (nb == 1)
            handle_frame(hdr, hdr + NET_HDR_LEN, len - NET_HDR_LEN);
        else
            handle_frame(hdr, rx_frame, gather_rx(heads, nb, len));
        /* TX (an ARP reply) may have happened in there, but the buffers go back only now. */
        for (uint16_t i = 0; i < nb; i++)
            post_rx(heads[i]);
        virtio_notify(&dev, RXQ, &rxq);
    }
    return true;
}

static bool got_arp_reply(void)
{
    return have_gateway_mac;
}

static bool got_ping_reply(void)
{
    return have_ping_reply;
}

int guest_main(void *boot_info)
{
    (void)boot_info;
    unsigned slot = pci_find(VIRTIO_PCI_ID(VIRTIO_ID_NET), 0);
    if (slot >= PCI_SLOTS) {
        serial_puts("vnet: FAIL: no virtio-net-pci device (1af4:1041) on bus 0\n");
        guest_exit(VNET_EXIT_NO_DEVICE);
    }
    virtio_pci_init(&dev, slot);
    uint64_t need = VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC | VIRTIO_NET_F_MRG_RXBUF;
    uint64_t features = virtio_negotiate(&dev, need, need, "vnet");
    if (features != need)
        fail(VNET_EXIT_FEATURES, "feature negotiation");
    for (unsigned i = 0; i < 6; i++)
        mac[i] = virtio_cfg_read8(&dev, i);
    serial_puts("vnet: mac ");
    put_mac(mac);
    serial_putc('\n');
    if (virtio_pci_num_queues(&dev) < 2)
        fail(VNET_EXIT_QUEUES, "fewer than two queues");
    virtio_queue_setup(&dev, RXQ, &rxq, RX_RING, QUEUE_SIZE, VIRTIO_MSI_NO_VECTOR);
    virtio_queue_setup(&dev, TXQ, &txq, TX_RING, QUEUE_SIZE, VIRTIO_MSI_NO_VECTOR);
    virtio_pci_config_vector(&dev, VIRTIO_MSI_NO_VECTOR);
    virtio_driver_ok(&dev);
    for (uint16_t i = 0; i < RX_BUFS; i++)
        post_rx(i);
    virtio_notify(&dev, RXQ, &rxq);

    static const uint8_t zero_mac[6];
    for (int t = 0; t < TRIES && !have_gateway_mac; t++) {
        send_arp(1, broadcast, zero_mac, gateway_ip);
        poll_rx(got_arp_reply, REPLY_WAIT_TSC);
    }
    if (!have_gateway_mac)
        fail(VNET_EXIT_NO_ARP, "no ARP reply from 10.0.2.2");

    for (unsigned seq = 1; seq <= 2; seq++) {
        have_ping_reply = false;
        for (int t = 0; t < TRIES && !have_ping_reply; t++) {
            send_ping(seq);
            poll_rx(got_ping_reply, REPLY_WAIT_TSC);
        }
        if (!have_ping_reply)
            fail(VNET_EXIT_NO_PING,
                 seq == 1 ? "no echo reply from 10.0.2.2" : "no reply to the large echo request");
    }
    if (partial_frames) {
        serial_puts("vnet: note: ");
        serial_put_dec(partial_frames);
        serial_puts(" merged frame(s) seen before all their buffers were in the used ring\n");
    }
    serial_puts("vnet: ok\n");
    return 0;
}
