// The event and configuration layout shared with the BPF programs (bpf/nsinspect_events.h), imported into
// Swift as part of the CShim module. The BPF C includes the same file, so both sides agree on every offset.
#ifndef NSINSPECT_BPF_EVENTS_H
#define NSINSPECT_BPF_EVENTS_H
#include "../../../bpf/nsinspect_events.h"
#endif
