// The handler API of a v4 supervisor (spec: supervisors-and-externals.md,
// section 2): Super::post, stop_application, get_output_directory, the
// orchestrator object, RTSREPLY/RTSBCAST, SUPSTATE.  Included by generated
// modules of graph types that have a <SupervisorType>, before its code; the
// generated supervisor object derives from pe_supervisor_services.
#pragma once
#include <string>
#include <cstdlib>
#include <vector>

namespace Super {

// A log line at level 0 (always shown); the exit markers act as handler_exit(0) / (1).
static inline void post(const std::string& text) {
    if (text == PE_EXIT_SUCCESS) { pe_exit(0); return; }
    if (text == PE_EXIT_FAIL) { pe_exit(1); return; }
    pe_log_text(0, text.data(), text.size());
}

// The end of the run with code 0: the reference's stop has no code argument.
static inline void stop_application() { pe_exit(0); }

// A fresh $TMP/supervisor_dir_XXXXXX, or "" (with a posted error) as the reference.
static inline std::string get_output_directory() {
    const char* tmp = getenv("TMP");
    if (!tmp) {
        post("Super::get_output_directory: TMP is not set");
        return "";
    }
    std::string pattern = std::string(tmp) + "/supervisor_dir_XXXXXX";
    std::vector<char> path(pattern.begin(), pattern.end());
    path.push_back('\0');
    if (!mkdtemp(path.data())) {
        post("Super::get_output_directory: cannot create " + pattern);
        return "";
    }
    return path.data();
}

}  // namespace Super

// graph_schema's services object, as supervisor code reaches it (`orchestrator->...`).
struct pe_orchestrator {
    void application_exit(int code) { pe_exit(code); }
    void log(int level, const char* fmt, ...) {
        if (pe_log_skipped(level, fmt)) return;
        va_list ap;
        va_start(ap, fmt);
        pe_vlog(level, fmt, ap);
        va_end(ap);
    }
};

struct pe_supervisor_services {
    pe_orchestrator orchestrator_object;
    pe_orchestrator* orchestrator = &orchestrator_object;
    bool pe_reply = false, pe_bcast = false;      // set by RTSREPLY() / RTSBCAST() in OnReceive
    static void stop_application() { Super::stop_application(); }
};

#define SUPSTATE(a) (supervisorState->a)
#define RTSREPLY() (pe_reply = true)
#define RTSBCAST() (pe_bcast = true)
// in device ReadyToSend handlers: ask to send on __SUP_OUT__
#define RTSSUP() (*readyToSend |= RTS_SUPER_IMPLICIT_SEND_FLAG)
