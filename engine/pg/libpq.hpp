// libpq, loaded when a connection is first needed.
//
// The pgforge binary does not link libpq: loading it (and GnuTLS, Kerberos, LDAP and p11-kit,
// whose initialisers run at load) costs about 10 ms, which a command that opens no connection
// (list, get, start, stop, --help) should not pay. The first call to functions() opens
// libpq.so.5 with dlopen and resolves every PQ* function pgforge calls through one table; the
// engine calls libpq only through it (engine/pg/connection.cpp). libpq-fe.h gives the types.
#pragma once

#include <libpq-fe.h>

namespace pgforge::pg::libpq {

// The soname opened: libpq 10 or later (PQencryptPasswordConn), from the package libpq5.
inline constexpr const char* kLibrary = "libpq.so.5";

// Every libpq function the engine calls. Adding one: add it here, nothing else.
#define PGFORGE_LIBPQ_FUNCTIONS(X) \
    X(PQclear)                     \
    X(PQcmdStatus)                 \
    X(PQconninfoFree)              \
    X(PQconninfoParse)             \
    X(PQconnectdbParams)           \
    X(PQencryptPasswordConn)       \
    X(PQerrorMessage)              \
    X(PQescapeIdentifier)          \
    X(PQescapeLiteral)             \
    X(PQexec)                      \
    X(PQexecParams)                \
    X(PQfinish)                    \
    X(PQfname)                     \
    X(PQfreemem)                   \
    X(PQftype)                     \
    X(PQgetCopyData)               \
    X(PQgetResult)                 \
    X(PQgetisnull)                 \
    X(PQgetlength)                 \
    X(PQgetvalue)                  \
    X(PQnfields)                   \
    X(PQntuples)                   \
    X(PQpingParams)                \
    X(PQputCopyEnd)                \
    X(PQresultErrorField)          \
    X(PQresultErrorMessage)        \
    X(PQresultStatus)              \
    X(PQserverVersion)             \
    X(PQsetNoticeProcessor)        \
    X(PQstatus)

struct Functions {
#define PGFORGE_LIBPQ_MEMBER(name) decltype(&::name) name = nullptr;
    PGFORGE_LIBPQ_FUNCTIONS(PGFORGE_LIBPQ_MEMBER)
#undef PGFORGE_LIBPQ_MEMBER
};

// The table, loading libpq on the first call (thread-safe). Throws Error(Exit::failure) naming
// the library and the package libpq5 when it cannot be loaded or lacks a function; the next
// call tries again.
const Functions& functions();

// True once functions() has loaded libpq in this process.
bool loaded();

// Opens `library` and resolves the table from it, as functions() does with kLibrary; for tests
// (a library that is not there, one without libpq's functions). The handle is never closed.
Functions load(const char* library);

}  // namespace pgforge::pg::libpq
