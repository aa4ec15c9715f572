// Debian's libopenblas-dev puts cblas.h in the multiarch include folder.
// Note: the header declares cblas_sbgemm but Debian's 0.3.21 library lacks it; never call it.
#include <cblas.h>
