# BPF objects and their libbpf skeletons: clang -target bpf against a build-time vmlinux.h, then bpftool gen skeleton.
#
#   fl_bpf_object(NAME SOURCE)
#
# compiles SOURCE (x.bpf.c; a sibling x.h shared with the loader is a dependency when it exists)
# to ${CMAKE_BINARY_DIR}/bpf/NAME.bpf.o, strips its DWARF (BTF stays: CO-RE and the skeleton need
# it) and writes ${CMAKE_BINARY_DIR}/generated/NAME.skel.h. The target NAME_skel builds both;
# a loader that includes "NAME.skel.h" needs, in the directory that defines the loader's target:
#
#   add_dependencies(fl_core NAME_skel)
#   target_include_directories(fl_core PRIVATE ${FL_BPF_GENERATED_DIR})   # fl_core already has it
#
# Tools: clang (clang-14 first), llvm-strip of the same version, bpftool (Debian installs it in
# /usr/sbin, outside a normal user's PATH). Override with -DFL_BPF_CLANG=, -DFL_LLVM_STRIP=,
# -DFL_BPFTOOL=.
include_guard(GLOBAL)

find_program(FL_BPF_CLANG NAMES clang-14 clang DOC "clang used to compile BPF programs")
if(NOT FL_BPF_CLANG)
  message(FATAL_ERROR "clang not found: faultline's BPF injectors are compiled with clang -target bpf. "
                      "Install it: apt-get install clang")
endif()
execute_process(COMMAND ${FL_BPF_CLANG} --version OUTPUT_VARIABLE _fl_clang_version
                RESULT_VARIABLE _fl_rc ERROR_QUIET)
if(NOT _fl_rc EQUAL 0 OR NOT _fl_clang_version MATCHES "clang version ([0-9]+)")
  message(FATAL_ERROR "${FL_BPF_CLANG} --version failed or is not clang: install clang (apt-get install clang)")
endif()
set(_fl_clang_major ${CMAKE_MATCH_1})
if(_fl_clang_major LESS 10)
  message(FATAL_ERROR "${FL_BPF_CLANG} is clang ${_fl_clang_major}: BPF CO-RE needs clang >= 10 (apt-get install clang)")
endif()

# The strip must understand what this clang emits, so prefer the matching version.
find_program(FL_LLVM_STRIP NAMES llvm-strip-${_fl_clang_major} llvm-strip
             DOC "llvm-strip used to drop DWARF from BPF objects")
if(NOT FL_LLVM_STRIP)
  message(FATAL_ERROR "llvm-strip not found: it drops DWARF from BPF objects (BTF stays). "
                      "Install it: apt-get install llvm")
endif()

find_program(FL_BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin /sbin
             DOC "bpftool used to dump vmlinux.h and generate skeletons")
if(NOT FL_BPFTOOL)
  message(FATAL_ERROR "bpftool not found (looked in PATH, /usr/sbin, /usr/local/sbin): it generates "
                      "vmlinux.h and the BPF skeletons. Install it: apt-get install bpftool")
endif()
# Ubuntu's /usr/sbin/bpftool is a wrapper that fails without linux-tools-$(uname -r): catch it here.
execute_process(COMMAND ${FL_BPFTOOL} version OUTPUT_VARIABLE _fl_bpftool_version
                RESULT_VARIABLE _fl_rc ERROR_VARIABLE _fl_bpftool_err)
if(NOT _fl_rc EQUAL 0)
  message(FATAL_ERROR "${FL_BPFTOOL} version failed: ${_fl_bpftool_err}"
                      "Install a working bpftool: apt-get install bpftool")
endif()
string(REGEX MATCH "v[0-9.]+" _fl_bpftool_version "${_fl_bpftool_version}")
message(STATUS "BPF: ${FL_BPF_CLANG} (clang ${_fl_clang_major}), ${FL_LLVM_STRIP}, ${FL_BPFTOOL} ${_fl_bpftool_version}")

# <bpf/bpf_helpers.h>: pkg-config leaves /usr/include out of LIBBPF_INCLUDE_DIRS, so look for it.
find_path(FL_LIBBPF_INCLUDE_DIR bpf/bpf_helpers.h HINTS ${LIBBPF_INCLUDE_DIRS}
          DOC "directory holding libbpf's bpf/bpf_helpers.h")
if(NOT FL_LIBBPF_INCLUDE_DIR)
  message(FATAL_ERROR "libbpf headers (bpf/bpf_helpers.h) not found: apt-get install libbpf-dev")
endif()

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|i.86")
  set(FL_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(FL_BPF_ARCH arm64)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "ppc64")
  set(FL_BPF_ARCH powerpc)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "riscv64")
  set(FL_BPF_ARCH riscv)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "s390")
  set(FL_BPF_ARCH s390)
else()
  set(FL_BPF_ARCH ${CMAKE_SYSTEM_PROCESSOR})
endif()

set(FL_BPF_GENERATED_DIR ${CMAKE_BINARY_DIR}/generated)
set(FL_BPF_OBJECT_DIR ${CMAKE_BINARY_DIR}/bpf)
set(FL_VMLINUX_H ${FL_BPF_GENERATED_DIR}/vmlinux.h)
file(MAKE_DIRECTORY ${FL_BPF_GENERATED_DIR} ${FL_BPF_OBJECT_DIR})

# At build time, from the running kernel's BTF; the script fails with the reason when there is none.
# /sys/kernel/btf/vmlinux is deliberately not a DEPENDS: a missing file would become make's
# "no rule to make target" instead of the script's explanation.
add_custom_command(OUTPUT ${FL_VMLINUX_H}
  COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/gen-vmlinux.sh ${FL_BPFTOOL} /sys/kernel/btf/vmlinux ${FL_VMLINUX_H}
  DEPENDS ${CMAKE_CURRENT_LIST_DIR}/gen-vmlinux.sh
  COMMENT "[bpf] vmlinux.h from /sys/kernel/btf/vmlinux"
  VERBATIM)
# Custom-command outputs are only visible in the directory that defines them: skeletons built in
# other directories reach vmlinux.h through this target.
add_custom_target(fl_vmlinux_h DEPENDS ${FL_VMLINUX_H})

set(FL_BPF_CFLAGS -g -O2 -Wall -target bpf -D__TARGET_ARCH_${FL_BPF_ARCH}
    -I${FL_BPF_GENERATED_DIR} -I${FL_LIBBPF_INCLUDE_DIR})
if(CMAKE_LIBRARY_ARCHITECTURE)
  # <asm/...> lives under the multiarch directory, which -target bpf does not search.
  list(APPEND FL_BPF_CFLAGS -idirafter /usr/include/${CMAKE_LIBRARY_ARCHITECTURE})
endif()

function(fl_bpf_object name source)
  if(ARGN)
    message(FATAL_ERROR "fl_bpf_object(${name} ${source}): unexpected arguments: ${ARGN}")
  endif()
  get_filename_component(src ${source} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
  if(NOT src MATCHES "\\.bpf\\.c$")
    message(FATAL_ERROR "fl_bpf_object(${name} ${source}): the source must be named x.bpf.c")
  endif()
  get_filename_component(srcdir ${src} DIRECTORY)
  string(REGEX REPLACE "\\.bpf\\.c$" ".h" shared_h ${src})
  set(deps ${src} ${FL_VMLINUX_H})
  if(EXISTS ${shared_h})
    list(APPEND deps ${shared_h})
  endif()

  set(tmp ${FL_BPF_OBJECT_DIR}/${name}.tmp.bpf.o)
  set(obj ${FL_BPF_OBJECT_DIR}/${name}.bpf.o)
  set(skel ${FL_BPF_GENERATED_DIR}/${name}.skel.h)

  # Through a temporary file, so a failed step never leaves a fresh-looking output behind.
  add_custom_command(OUTPUT ${obj}
    COMMAND ${FL_BPF_CLANG} ${FL_BPF_CFLAGS} -I${srcdir} -MD -MF ${obj}.d -MT ${obj} -c ${src} -o ${tmp}
    COMMAND ${FL_LLVM_STRIP} -g ${tmp} -o ${obj}
    COMMAND ${CMAKE_COMMAND} -E rm -f ${tmp}
    DEPENDS ${deps}
    DEPFILE ${obj}.d
    COMMENT "[bpf] clang -target bpf ${name}.bpf.o"
    VERBATIM)
  add_custom_command(OUTPUT ${skel}
    COMMAND ${FL_BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "[bpf] bpftool gen skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_skel DEPENDS ${skel})
  add_dependencies(${name}_skel fl_vmlinux_h)
  set_target_properties(${name}_skel PROPERTIES FL_BPF_OBJECT ${obj} FL_BPF_SKELETON ${skel})
endfunction()
