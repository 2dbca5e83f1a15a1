/* student_cpu.h in float and in double, from one source (student_cpu.inc). */
#include "train/student_cpu.h"

#include <stdlib.h>
#include <string.h>

#define R float
#define S(name) name##_f32
#include "train/student_cpu.inc"
#undef R
#undef S

#define R double
#define S(name) name##_f64
#include "train/student_cpu.inc"
#undef R
#undef S
