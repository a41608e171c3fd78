/* Test shim only, never shipped: wine 8 lacks bcryptprimitives.dll!ProcessPrng, which Rust's
 * std imports on Windows. This DLL provides it on top of advapi32's RtlGenRandom
 * (SystemFunction036), which wine has. scripts/windows.sh builds it and copies it into the
 * wine prefix's system32. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
