/* rtc.h: the MC146818 real-time clock and CMOS memory at ports 0x70-0x71 (firmware boot). */
#ifndef KILN_RTC_H
#define KILN_RTC_H

#include <stdint.h>

#include "device.h"
#include "devices/devices.h"

#define RTC_PORT_INDEX 0x70
#define RTC_PORT_DATA 0x71

/* What the CMOS memory tells firmware about the machine. */
struct rtc_config {
    uint64_t ram_below_4g; /* bytes of RAM from address 0 */
    uint64_t ram_above_4g; /* bytes of RAM from 4 GiB */
    unsigned cpus;
};

extern const struct device_class rtc_class;

/*
 * The clock runs on the host's UTC time plus whatever offset the guest sets by writing it. No
 * interrupts: alarm, periodic and update-ended flags never rise (register C reads 0). A snapshot
 * saves the guest's time; the restored clock goes on from it (see rtc_save).
 */
int rtc_create(const struct rtc_config *cfg, struct device **out);

#endif
