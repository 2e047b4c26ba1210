// Niantic spz PLY <-> SPZ conversion (RDF PLY, RUB SPZ) for tools/make_format_fixtures.py. Build against
// nianticlabs/spz src/cc (load-spz.cc splat-types.cc splat-c-types.cc): g++ -std=c++17 -I SPZ/src/cc ... -lz -lzstd
#include "load-spz.h"
#include <cstdlib>
#include <cstring>
#include <cstdio>
int main(int argc, char **argv) {
  if (argc < 4) { std::fprintf(stderr, "usage: ply2spz IN.ply OUT.spz VERSION | spz2ply IN.spz OUT.ply\n"); return 2; }
  if (!std::strcmp(argv[1], "ply2spz")) {
    spz::UnpackOptions uo; uo.to = spz::CoordinateSystem::RUB;
    spz::GaussianCloud cloud = spz::loadSplatFromPly(argv[2], uo);
    spz::PackOptions po; po.from = spz::CoordinateSystem::RUB; po.version = std::atoi(argv[4]);
    return spz::saveSpz(cloud, po, argv[3]) ? 0 : 1;
  }
  spz::UnpackOptions uo; uo.to = spz::CoordinateSystem::RDF;
  spz::GaussianCloud cloud = spz::loadSpz(argv[2], uo);
  if (cloud.numPoints == 0) return 1;
  spz::PackOptions po; po.from = spz::CoordinateSystem::RDF;
  return spz::saveSplatToPly(cloud, po, argv[3]) ? 0 : 1;
}
