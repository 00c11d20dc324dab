/* ACLNN_API, the export macro of CANN's operator headers (CANN ships it as
 * aclnnop/aclnn_util.h; operator headers include it as "aclnn_util.h").  Here it lives in
 * include/aclnn, which the vendor command line (-I P/include/aclnn) puts on the include path,
 * so a vendor operator header copied into P/include/aclnnop finds it. */
#ifndef ADDLORA_ACLNN_UTIL_H_
#define ADDLORA_ACLNN_UTIL_H_

#ifndef ACLNN_API
#define ACLNN_API __attribute__((visibility("default")))
#endif

#endif /* ADDLORA_ACLNN_UTIL_H_ */
