/*
 * uno_sim: runs an Arduino Uno firmware in simavr, with its serial port (UART0) on a
 * pseudo-terminal and a known waveform on the ADC, so `lab` can read the sketch's bytes
 * exactly as it would read a real board's /dev/ttyACM0.
 *
 *   uno_sim FIRMWARE.elf PTY_FILE [SECONDS] [ramp|sine] [SPEED]
 *
 * - The pty's path is written to PTY_FILE (a path of our choosing: the `simavr` tool's
 *   own /tmp/simavr-uart0 link is shared by every run on the machine, and parallel runs
 *   would fight over it).
 * - The ADC: simavr asks for a pin's voltage each time a conversion starts (the
 *   ADC_IRQ_OUT_TRIGGER irq); we answer with sample n of the waveform, so conversion n
 *   reads back exactly value n. For `ramp` that is n mod 256 after the sketch's `>> 2`.
 * - Paced: SPEED simulated seconds per wall-clock second (default 1, like a real board;
 *   0 runs flat out, several times faster, which can overrun a slow reader: simavr's
 *   UART bridge queues a few KB and then drops bytes).
 * - Time-capped: it stops after SECONDS of simulated time (default 10), or on SIGTERM or
 *   SIGINT, or when its parent dies, and always closes the pty on the way out.
 *
 * Build: see the Makefile beside this file (needs libsimavr-dev).
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "sim_avr.h"
#include "sim_elf.h"
#include "sim_irq.h"
#include "avr_adc.h"
#include "uart_pty.h"

/* Reference voltage in millivolts. The Uno's analogRead uses AVCC, 5 V; simavr assumes
 * 3.3 V unless told. */
#define AVCC_MV 5000

/* The Uno's clock; used when the ELF does not say. */
#define UNO_HZ 16000000

static volatile sig_atomic_t stop_requested;
static uart_pty_t uart_pty;
static avr_irq_t *adc_in;     /* the ADC's input irqs, ADC0 first */
static unsigned long conversions;
static int waveform_sine;

static double wall_seconds(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_signal(int sig) {
	(void)sig;
	stop_requested = 1;
}

/* The byte sample n should read as, after the sketch's analogRead(A0) >> 2. */
static unsigned sample_value(unsigned long n) {
	if (waveform_sine)
		return (unsigned)lround(127.5 + 127.5 * sin(2 * M_PI * (double)(n % 128) / 128.0)) & 0xff;
	return (unsigned)(n % 256);
}

/* Millivolts that the ADC converts to 4 * v + 2: in the middle of the four 10-bit codes
 * that `>> 2` maps to v, so rounding cannot move it. simavr computes
 * code = mV * 1023 / AVCC (integer division), so mV = ceil(code * AVCC / 1023). */
static uint32_t millivolts_for(unsigned v) {
	uint32_t code = 4 * v + 2;
	return (code * AVCC_MV + 1022) / 1023;
}

/* A conversion is starting: put the next sample on A0. */
static void on_adc_trigger(struct avr_irq_t *irq, uint32_t value, void *param) {
	(void)irq;
	(void)param;
	union {
		avr_adc_mux_t mux;
		uint32_t v;
	} e = {.v = value};
	if (e.mux.kind != ADC_MUX_SINGLE || e.mux.src != 0)
		return; /* the sketch only reads A0 */
	avr_raise_irq(adc_in + ADC_IRQ_ADC0, millivolts_for(sample_value(conversions)));
	conversions++;
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: %s FIRMWARE.elf PTY_FILE [SECONDS] [ramp|sine] [SPEED]\n", argv[0]);
		return 2;
	}
	double seconds = argc > 3 ? atof(argv[3]) : 10.0;
	waveform_sine = argc > 4 && strcmp(argv[4], "sine") == 0;
	double speed = argc > 5 ? atof(argv[5]) : 1.0;

	/* Die with the process that started us (a test that panicked, say). */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);

	elf_firmware_t fw;
	memset(&fw, 0, sizeof fw);
	if (elf_read_firmware(argv[1], &fw) != 0) {
		fprintf(stderr, "uno_sim: cannot read firmware %s\n", argv[1]);
		return 1;
	}
	avr_t *avr = avr_make_mcu_by_name("atmega328p");
	if (!avr) {
		fprintf(stderr, "uno_sim: simavr has no atmega328p\n");
		return 1;
	}
	avr_init(avr);
	if (fw.frequency == 0)
		fw.frequency = UNO_HZ;
	avr_load_firmware(avr, &fw);
	avr->vcc = avr->avcc = avr->aref = AVCC_MV;

	adc_in = avr_io_getirq(avr, AVR_IOCTL_ADC_GETIRQ, 0);
	avr_irq_register_notify(adc_in + ADC_IRQ_OUT_TRIGGER, on_adc_trigger, NULL);

	uart_pty_init(avr, &uart_pty);
	uart_pty_connect(&uart_pty, '0');
	FILE *f = fopen(argv[2], "w");
	if (!f) {
		perror("uno_sim: cannot write the pty file");
		uart_pty_stop(&uart_pty);
		return 1;
	}
	fprintf(f, "%s\n", uart_pty.port[0].slavename);
	fclose(f);
	fprintf(stderr, "uno_sim: UART0 on %s (path written to %s), %.1f s cap, %s\n",
	        uart_pty.port[0].slavename, argv[2], seconds, waveform_sine ? "sine" : "ramp");

	avr_cycle_count_t end = (avr_cycle_count_t)(seconds * avr->frequency);
	int state = cpu_Running;
	double start = wall_seconds();
	unsigned long steps = 0;
	while (!stop_requested && avr->cycle < end && state != cpu_Done && state != cpu_Crashed) {
		state = avr_run(avr);
		/* Every 4096 steps (well under a simulated millisecond), sleep off any lead the
		 * simulation has over the wall clock times SPEED. */
		if (speed > 0 && ++steps % 4096 == 0) {
			double ahead = (double)avr->cycle / avr->frequency / speed - (wall_seconds() - start);
			if (ahead > 0.002)
				usleep((useconds_t)(ahead * 1e6));
		}
	}

	fprintf(stderr, "uno_sim: stopped after %.2f simulated s, %lu conversions\n",
	        (double)avr->cycle / avr->frequency, conversions);
	uart_pty_stop(&uart_pty);
	avr_terminate(avr);
	return 0;
}
