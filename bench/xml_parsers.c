/* Which streaming XML parser for psim's instance reader: expat or libxml2's
   SAX2 push parser, each fed 1 MB blocks and reading every attribute of
   every element (no other work), namespaces on as psim needs them.

       gcc -O2 -I/usr/include/libxml2 bench/xml_parsers.c -o /tmp/xml_parsers -lexpat -lxml2
       python bench/graphs.py mesh 1000 1000 > /tmp/mesh.xml
       /usr/bin/time -f "%e s" /tmp/xml_parsers expat /tmp/mesh.xml
       /usr/bin/time -f "%e s" /tmp/xml_parsers libxml2 /tmp/mesh.xml

   Prints the elements and attribute bytes seen (both must agree). */
#include <expat.h>
#include <libxml/parser.h>
#include <libxml/SAX2.h>
#include <stdio.h>
#include <string.h>

static long elements, attr_bytes;
static char block[1 << 20];

static void expat_start(void* u, const char* name, const char** a) {
    (void)u; (void)name;
    elements++;
    for (; *a; a += 2) attr_bytes += (long)strlen(a[1]);
}

static void sax2_start(void* ctx, const xmlChar* local, const xmlChar* prefix, const xmlChar* uri, int n_ns,
                       const xmlChar** ns, int n_attrs, int n_defaulted, const xmlChar** attrs) {
    (void)ctx; (void)local; (void)prefix; (void)uri; (void)n_ns; (void)ns; (void)n_defaulted;
    elements++;
    for (int i = 0; i < n_attrs; i++) attr_bytes += attrs[i * 5 + 4] - attrs[i * 5 + 3];
}

int main(int argc, char** argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s expat|libxml2 FILE\n", argv[0]); return 2; }
    FILE* f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 2; }
    size_t n;
    if (strcmp(argv[1], "expat") == 0) {
        XML_Parser p = XML_ParserCreateNS(NULL, '\x01');
        XML_SetStartElementHandler(p, expat_start);
        while ((n = fread(block, 1, sizeof block, f)) > 0)
            if (!XML_Parse(p, block, (int)n, 0)) { fprintf(stderr, "malformed\n"); return 1; }
        XML_Parse(p, block, 0, 1);
    } else {
        xmlSAXHandler h;
        memset(&h, 0, sizeof h);
        h.initialized = XML_SAX2_MAGIC;
        h.startElementNs = sax2_start;
        xmlParserCtxtPtr p = xmlCreatePushParserCtxt(&h, NULL, NULL, 0, NULL);
        xmlCtxtUseOptions(p, XML_PARSE_HUGE);
        while ((n = fread(block, 1, sizeof block, f)) > 0)
            if (xmlParseChunk(p, block, (int)n, 0)) { fprintf(stderr, "malformed\n"); return 1; }
        xmlParseChunk(p, block, 0, 1);
    }
    printf("%ld elements, %ld attribute bytes\n", elements, attr_bytes);
    return 0;
}
