/* Umbrella header of the CANN "ACL" C API as AddLora provides it (see acl_base.h, acl_rt.h). */
#ifndef ADDLORA_ACL_H_
#define ADDLORA_ACL_H_

#include "acl_base.h"
#include "acl_rt.h"

#endif /* ADDLORA_ACL_H_ */
