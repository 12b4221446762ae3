// safetensors.hpp: safetensors reading and writing (the io layer's umbrella).
#pragma once

#include <masquant/io/safetensors_file.hpp>
#include <masquant/io/safetensors_writer.hpp>
