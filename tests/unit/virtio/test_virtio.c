/* test_virtio.c: the virtio device core: status, features, activation, reset, errors, signals. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "fixtures.h"
#include "memory.h"
#include "virtio/virtio.h"
#include "virtio/virtqueue.h"

#define RAM (16ULL << 20)
#define FEAT_X (1ULL << 5)

struct fake {
    struct virtio_device vd;
    struct guest_mem gm;
    unsigned activates, resets, signal_queue, signal_config, last_q;
    int activate_ret, reset_ret;
};

static int f_activate(struct virtio_device *vd)
{
    struct fake *f = vd->priv;
    f->activates++;
    return f->activate_ret;
}

static int f_reset(struct device *d)
{
    struct fake *f = virtio_device_of(d)->priv;
    f->resets++;
    return f->reset_ret;
}

static void f_notify(struct virtio_device *vd, unsigned q)
{
    (void)vd;
    (void)q;
}

static const struct virtio_device_ops ops = {
    .dev = {.reset = f_reset},
    .name = "fake",
    .device_id = VIRTIO_ID_BLOCK,
    .activate = f_activate,
    .queue_notify = f_notify,
};

static void t_signal_queue(struct virtio_device *vd, unsigned q)
{
    struct fake *f = vd->priv;
    f->signal_queue++;
    f->last_q = q;
}

static void t_signal_config(struct virtio_device *vd)
{
    struct fake *f = vd->priv;
    f->signal_config++;
}

static const struct virtio_transport_ops transport = {t_signal_queue, t_signal_config};

static unsigned log_lines;
static const struct kiln_log test_log = {fixture_count_log, &log_lines, KILN_LOG_WARN};

static void setup(struct fake *f, unsigned queues)
{
    memset(f, 0, sizeof(*f));
    log_lines = 0;
    ck_assert_int_eq(guest_mem_init(&f->gm, RAM), 0);
    virtio_device_init(&f->vd, &ops, f, FEAT_X | VIRTIO_F_EVENT_IDX, queues, 64, &f->gm, &test_log);
    f->vd.transport = &transport;
}

static void teardown(struct fake *f)
{
    virtio_device_destroy(&f->vd);
    guest_mem_free(&f->gm);
}

/* A transport's status write: device lock held, as the transport does. */
static bool status(struct fake *f, uint8_t s)
{
    pthread_mutex_lock(&f->vd.lock);
    bool work = virtio_write_status(&f->vd, s);
    pthread_mutex_unlock(&f->vd.lock);
    return work;
}

static void queue(struct fake *f, unsigned q, uint64_t desc)
{
    struct virtio_queue *vq = &f->vd.queues[q];
    vq->vq.size = 16;
    vq->vq.desc_gpa = desc;
    vq->vq.avail_gpa = 0x20000 + q * 0x1000;
    vq->vq.used_gpa = 0x40000 + q * 0x1000;
    vq->enabled = true;
}

/* ACKNOWLEDGE, DRIVER, features, FEATURES_OK. */
static void negotiate(struct fake *f, uint64_t features)
{
    ck_assert(!status(f, VIRTIO_STATUS_ACKNOWLEDGE));
    ck_assert(!status(f, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER));
    f->vd.driver_features = features;
    ck_assert(!status(f, 0x0b));
}

static void start(struct fake *f)
{
    negotiate(f, VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX);
    queue(f, 0, 0x10000);
    ck_assert(status(f, 0x0f));
    virtio_loop_work(&f->vd);
    ck_assert(f->vd.active);
}

START_TEST(test_init)
{
    struct fake f;
    setup(&f, VIRTIO_MAX_QUEUES + 5);
    ck_assert_uint_eq(f.vd.num_queues, VIRTIO_MAX_QUEUES);
    ck_assert_uint_eq(f.vd.device_features, FEAT_X | VIRTIO_F_EVENT_IDX | VIRTIO_F_VERSION_1);
    ck_assert_uint_eq(virtio_read_status(&f.vd), 0);
    ck_assert_uint_eq(f.vd.config_vector, VIRTIO_NO_VECTOR);
    for (unsigned i = 0; i < f.vd.num_queues; i++) {
        ck_assert_uint_eq(f.vd.queues[i].vq.size, 64);
        ck_assert_uint_eq(f.vd.queues[i].vq.max_size, 64);
        ck_assert_uint_eq(f.vd.queues[i].vector, VIRTIO_NO_VECTOR);
        ck_assert(!f.vd.queues[i].enabled);
    }
    teardown(&f);
}
END_TEST

START_TEST(test_status_bits_accumulate)
{
    struct fake f;
    setup(&f, 1);
    status(&f, VIRTIO_STATUS_ACKNOWLEDGE);
    status(&f, VIRTIO_STATUS_DRIVER);
    ck_assert_uint_eq(virtio_read_status(&f.vd), 3);
    /* NEEDS_RESET is the device's: a driver cannot set it. */
    status(&f, 3 | VIRTIO_STATUS_NEEDS_RESET);
    ck_assert_uint_eq(virtio_read_status(&f.vd), 3 | VIRTIO_STATUS_NEEDS_RESET);
    teardown(&f);
}
END_TEST

START_TEST(test_features_ok)
{
    struct fake f;
    setup(&f, 1);
    negotiate(&f, VIRTIO_F_VERSION_1 | (1ULL << 40));
    ck_assert_uint_eq(virtio_read_status(&f.vd), 3);
    status(&f, 0);
    negotiate(&f, FEAT_X);
    ck_assert_uint_eq(virtio_read_status(&f.vd), 3);
    status(&f, 0);
    negotiate(&f, VIRTIO_F_VERSION_1 | FEAT_X);
    ck_assert_uint_eq(virtio_read_status(&f.vd), 0x0b);
    ck_assert(virtio_has_feature(&f.vd, FEAT_X));
    ck_assert(!virtio_has_feature(&f.vd, VIRTIO_F_EVENT_IDX));
    teardown(&f);
}
END_TEST

START_TEST(test_driver_ok_without_features_ok)
{
    struct fake f;
    setup(&f, 1);
    status(&f, 3);
    ck_assert(!status(&f, 3 | VIRTIO_STATUS_DRIVER_OK));
    ck_assert_uint_eq(log_lines, 1);
    virtio_loop_work(&f.vd);
    ck_assert_uint_eq(f.activates, 0);
    ck_assert(!f.vd.active);
    teardown(&f);
}
END_TEST

START_TEST(test_reset_never_started)
{
    struct fake f;
    setup(&f, 2);
    negotiate(&f, VIRTIO_F_VERSION_1);
    queue(&f, 1, 0x10000);
    f.vd.config_vector = 1;
    /* Done on the spot: no loop work, no device call, status reads 0 at once. */
    ck_assert(!status(&f, 0));
    ck_assert_uint_eq(virtio_read_status(&f.vd), 0);
    ck_assert_uint_eq(f.resets, 0);
    ck_assert_uint_eq(f.vd.driver_features, 0);
    ck_assert(!f.vd.reset_pending);
    ck_assert(!f.vd.queues[1].enabled);
    ck_assert_uint_eq(f.vd.queues[1].vq.size, 64);
    ck_assert_uint_eq(f.vd.config_vector, VIRTIO_NO_VECTOR);
    /* The next initialization goes straight on. */
    ck_assert(!status(&f, VIRTIO_STATUS_ACKNOWLEDGE));
    ck_assert_uint_eq(virtio_read_status(&f.vd), 1);
    teardown(&f);
}
END_TEST

START_TEST(test_reset_after_start)
{
    struct fake f;
    setup(&f, 1);
    start(&f);
    ck_assert(status(&f, 0));
    ck_assert(f.vd.reset_pending);
    ck_assert_uint_eq(virtio_read_status(&f.vd), 0x0f); /* not 0 until quiesced */
    ck_assert(!status(&f, VIRTIO_STATUS_ACKNOWLEDGE));  /* ignored while pending */
    ck_assert_uint_eq(virtio_read_status(&f.vd), 0x0f);
    virtio_loop_work(&f.vd);
    ck_assert_uint_eq(f.resets, 1);
    ck_assert_uint_eq(virtio_read_status(&f.vd), 0);
    ck_assert(!f.vd.active);
    ck_assert(!f.vd.reset_pending);
    ck_assert(!f.vd.queues[0].enabled);
    teardown(&f);
}
END_TEST

START_TEST(test_reset_draining)
{
    struct fake f;
    setup(&f, 1);
    start(&f);
    f.reset_ret = 1; /* requests still in flight */
    ck_assert(status(&f, 0));
    virtio_loop_work(&f.vd);
    ck_assert_uint_eq(f.resets, 1);
    ck_assert_uint_eq(virtio_read_status(&f.vd), 0x0f);
    ck_assert(f.vd.reset_pending);
    virtio_reset_done(&f.vd);
    ck_assert_uint_eq(virtio_read_status(&f.vd), 0);
    ck_assert(!f.vd.reset_pending);
    /* And it starts again. */
    f.reset_ret = 0;
    start(&f);
    ck_assert_uint_eq(f.activates, 2);
    teardown(&f);
}
END_TEST

START_TEST(test_activation)
{
    struct fake f;
    setup(&f, 2);
    start(&f);
    ck_assert_uint_eq(f.activates, 1);
    ck_assert(f.vd.queues[0].vq.ready);
    ck_assert(f.vd.queues[0].vq.event_idx);
    ck_assert(!f.vd.queues[1].vq.ready); /* not enabled by the driver */
    virtio_loop_work(&f.vd);             /* nothing more to do */
    ck_assert_uint_eq(f.activates, 1);
    teardown(&f);
}
END_TEST

START_TEST(test_activation_bad_queue)
{
    struct fake f;
    setup(&f, 2);
    negotiate(&f, VIRTIO_F_VERSION_1);
    queue(&f, 0, 0x10000);
    queue(&f, 1, RAM - 8); /* descriptor table runs off the end of RAM */
    ck_assert(status(&f, 0x0f));
    virtio_loop_work(&f.vd);
    ck_assert_uint_eq(f.activates, 0);
    ck_assert(!f.vd.active);
    ck_assert_uint_eq(virtio_read_status(&f.vd) & VIRTIO_STATUS_NEEDS_RESET,
                      VIRTIO_STATUS_NEEDS_RESET);
    ck_assert_uint_eq(f.vd.isr & VIRTIO_ISR_CONFIG, VIRTIO_ISR_CONFIG);
    ck_assert_uint_eq(f.signal_config, 1);
    ck_assert_uint_eq(log_lines, 1);
    /* Misaligned rings are refused the same way. */
    status(&f, 0);
    virtio_loop_work(&f.vd);
    negotiate(&f, VIRTIO_F_VERSION_1);
    queue(&f, 0, 0x10008);
    ck_assert(status(&f, 0x0f));
    virtio_loop_work(&f.vd);
    ck_assert_uint_eq(f.activates, 0);
    ck_assert_uint_eq(log_lines, 2); /* logged again: the driver reset in between */
    teardown(&f);
}
END_TEST

START_TEST(test_activate_fails)
{
    struct fake f;
    setup(&f, 1);
    f.activate_ret = -ENOMEM;
    negotiate(&f, VIRTIO_F_VERSION_1);
    queue(&f, 0, 0x10000);
    ck_assert(status(&f, 0x0f));
    virtio_loop_work(&f.vd);
    ck_assert_uint_eq(f.activates, 1);
    ck_assert(!f.vd.active);
    ck_assert(virtio_read_status(&f.vd) & VIRTIO_STATUS_NEEDS_RESET);
    teardown(&f);
}
END_TEST

START_TEST(test_device_error_logged_once)
{
    struct fake f;
    setup(&f, 1);
    start(&f);
    for (int i = 0; i < 5; i++)
        virtio_device_error(&f.vd, 0, -EINVAL);
    ck_assert_uint_eq(log_lines, 1);
    ck_assert_uint_eq(f.signal_config, 5);
    ck_assert(virtio_read_status(&f.vd) & VIRTIO_STATUS_NEEDS_RESET);
    ck_assert(status(&f, 0));
    virtio_loop_work(&f.vd);
    ck_assert_uint_eq(virtio_read_status(&f.vd), 0);
    virtio_device_error(&f.vd, 0, EIO);
    ck_assert_uint_eq(log_lines, 2);
    teardown(&f);
}
END_TEST

START_TEST(test_signals)
{
    struct fake f;
    setup(&f, 1);
    start(&f);
    virtio_config_changed(&f.vd);
    ck_assert_uint_eq(f.vd.config_generation, 1);
    ck_assert_uint_eq(f.vd.isr, VIRTIO_ISR_CONFIG);
    ck_assert_uint_eq(f.signal_config, 1);
    /* A used buffer: the ring (flags 0) wants an interrupt. */
    virtq_push(&f.vd.queues[0].vq, 0, 0);
    virtio_queue_signal(&f.vd, 0);
    ck_assert_uint_eq(f.signal_queue, 1);
    ck_assert_uint_eq(f.last_q, 0);
    ck_assert_uint_eq(f.vd.isr, VIRTIO_ISR_CONFIG | VIRTIO_ISR_QUEUE);
    /* Nothing new since: no interrupt. Out-of-range queue: ignored. */
    virtio_queue_signal(&f.vd, 0);
    virtio_queue_signal(&f.vd, 7);
    ck_assert_uint_eq(f.signal_queue, 1);
    teardown(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("virtio");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_init);
    tcase_add_test(tc, test_status_bits_accumulate);
    tcase_add_test(tc, test_features_ok);
    tcase_add_test(tc, test_driver_ok_without_features_ok);
    tcase_add_test(tc, test_reset_never_started);
    tcase_add_test(tc, test_reset_after_start);
    tcase_add_test(tc, test_reset_draining);
    tcase_add_test(tc, test_activation);
    tcase_add_test(tc, test_activation_bad_queue);
    tcase_add_test(tc, test_activate_fails);
    tcase_add_test(tc, test_device_error_logged_once);
    tcase_add_test(tc, test_signals);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
