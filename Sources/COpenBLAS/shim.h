// Debian's libopenblas-dev puts cblas.h in the multiarch include folder.
// Note: the header declares cblas_sbgemm but Debian's 0.3.21 library lacks it; never call it.
#include <cblas.h>
// OpenBLAS's own (not in its headers, exported by every OpenBLAS build): joins the idle BLAS worker
// threads; the next threaded BLAS call starts them again.
int blas_thread_shutdown_(void);
