/* The C instance reader (instance_reader.cpp), as cffi sees it: the
   <GraphInstance> parsed by libxml2's SAX2 push parser, devices and edges
   handed to a pl_loader, values decoded into packed per-type arrays. */
typedef struct pr_reader pr_reader;

enum {   /* what stopped the reader (pr_problem.code) */
    PR_OK = 0, PR_E_XML, PR_E_GRAPH_TYPE, PR_E_TWO_INSTANCES, PR_E_UNKNOWN_TYPE, PR_E_NOT_EXTERNAL,
    PR_E_EXTERNAL, PR_E_DUPLICATE_ID, PR_E_NO_ID, PR_E_NO_PATH, PR_E_SEND_INDEX, PR_E_EDGE,
    PR_E_EDGE_VALUES
};
enum { PR_DEVICE_P = 0, PR_DEVICE_S, PR_EDGE_P, PR_EDGE_S };   /* the four kinds of value */

typedef struct {
    int code;            /* PR_E_*, or for a left value its PR_DEVICE_P.. kind */
    int detail;          /* PR_E_EDGE: the loader's PL_E_*; PR_E_UNKNOWN_TYPE: 1 if the element is ExtI */
    uint32_t index;      /* a left value: device type or edge kind */
    uint64_t slot;       /* a left value: its block in that type's or kind's array */
    uint64_t line;       /* the element's line, as lxml's sourceline gives it */
    const char* a;       /* device id or edge path (PR_E_XML: the parser's message) */
    size_t a_len;
    const char* b;       /* type name, sendIndex text, or a left value's text */
    size_t b_len;
    int b_present;       /* 0: the attribute in b is missing */
} pr_problem;

pr_reader* pr_create(pl_loader* L, const char* ns, int version, const char* graph_type_id,
                     const char* type_names, const uint8_t* external);
int pr_layout(pr_reader* R, int kind, uint32_t index, const char* description, const uint8_t* deflt,
              uint32_t size);
int pr_feed(pr_reader* R, const char* data, size_t len, int final);
void pr_problem_of(pr_reader* R, pr_problem* out);
uint64_t pr_n_left(pr_reader* R);
void pr_left(pr_reader* R, uint64_t i, pr_problem* out);
const uint8_t* pr_values(pr_reader* R, int kind, uint32_t index, size_t* size);
const char* pr_ids(pr_reader* R, size_t* size);
const char* pr_graph_text(pr_reader* R, int which, size_t* size);
uint32_t pr_n_externals(pr_reader* R);
const uint32_t* pr_externals(pr_reader* R);
int64_t pr_halt(pr_reader* R);
void pr_destroy(pr_reader* R);
