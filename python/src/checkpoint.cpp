// checkpoint.cpp: whole models — recipes and their name patterns, quantize_checkpoint() and
// QuantizedCheckpoint.
#include <masquant/io/detail/json_file.hpp>
#include <masquant/model/presets.hpp>
#include <masquant/model/quantize.hpp>
#include <masquant/model/quantized_checkpoint.hpp>
#include <nlohmann/json.hpp>

#include "common.hpp"

namespace masquant::python {

namespace {

// The recipe named by `kind`: "preset" (a preset name), "file" (a recipe file or a
// quantized checkpoint's config.json section), "json" (recipe JSON text), "auto" (the preset of
// `model`'s config.json model_type).
quantization_recipe recipe_of(const std::string& kind, const std::string& value,
                              const std::string& model) {
  if (kind == "preset") return recipe_preset(value);
  if (kind == "file") return load_recipe(value);
  if (kind == "json") {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(value);
    } catch (const nlohmann::json::exception& e) {
      throw py::value_error(std::string("recipe: not JSON: ") + e.what());
    }
    return recipe_from_json(j, "recipe");
  }
  const auto config = detail::parse_json_file(model + "/config.json");
  const std::string type = config.value("model_type", "");
  const std::string preset = preset_for_model_type(type);
  if (preset.empty()) {
    std::string known;
    for (const auto& p : recipe_presets()) known += (known.empty() ? "" : ", ") + p;
    throw py::value_error("no preset for model_type '" + type + "' of " + model +
                          "/config.json: give recipe= (a preset: " + known +
                          "; a recipe file; or a dict)");
  }
  return recipe_preset(preset);
}

existing_output existing_of(const std::string& s) {
  if (s == "refuse") return existing_output::refuse;
  if (s == "resume") return existing_output::resume;
  if (s == "overwrite") return existing_output::overwrite;
  throw py::value_error("existing: '" + s + "' is not refuse, resume or overwrite");
}

}  // namespace

void register_checkpoint(py::module_& m) {
  m.def(
      "pattern_matches",
      [](const std::string& pattern, const std::string& name) {
        return name_pattern(pattern).matches(name);
      },
      py::arg("pattern"), py::arg("name"),
      "Whether a recipe pattern ('re:<regex>', or a name with * wildcards) matches a name.");
  m.def(
      "_recipe",
      [](const std::string& kind, const std::string& value, const std::string& model) {
        quantization_recipe r = recipe_of(kind, value, model);
        r.validate();
        return to_json(r).dump();
      },
      py::arg("kind"), py::arg("value"), py::arg("model") = "");
  m.def(
      "_linear_settings",
      [](const std::string& recipe_json, const std::string& name) {
        const quantization_recipe r = recipe_of("json", recipe_json, "");
        nlohmann::ordered_json j;
        detail::settings_to_json(r.settings_of(name), j);
        return j.dump();
      },
      py::arg("recipe"), py::arg("name"));
  m.def("recipe_presets", &recipe_presets, "The names of the built-in recipes.");

  m.def(
      "_quantize_checkpoint",
      [](const std::string& model, const std::string& output, const std::string& recipe_json,
         std::vector<std::string> statistics, std::vector<std::string> tokens,
         const std::string& inputs, const std::string& existing, std::uint64_t shard_bytes,
         std::optional<std::pair<index_t, index_t>> layers, std::vector<std::string> only,
         bool join, int threads, py::object progress, const py::dict& settings) {
        quantize_options o;
        o.model = model;
        o.output = output;
        o.recipe = recipe_of("json", recipe_json, model);
        o.recipe.defaults =
            o.recipe.defaults.overridden_by(settings_from_kwargs(settings, "quantize_checkpoint"));
        o.recipe.validate();
        o.statistics = std::move(statistics);
        o.tokens = std::move(tokens);
        o.inputs = inputs;
        o.existing = existing_of(existing);
        o.shard_bytes = shard_bytes;
        o.part.layers = layers;
        o.part.only = std::move(only);
        o.join = join;
        const thread_holder pool = make_threads(threads);
        o.parallel = pool.fn;
        if (!progress.is_none())
          o.progress = [&progress](const quantize_progress& p) {
            if (p.stage != nullptr) return;  // one call per linear started and finished
            py::gil_scoped_acquire locked;
            py::dict d;
            d["linear"] = p.linear;
            d["finished"] = p.finished;
            d["done"] = p.linears_done;
            d["total"] = p.linears_total;
            d["work_done"] = p.work_done;
            progress(d);
          };
        quantize_result r;
        {
          py::gil_scoped_release unlocked;
          r = quantize_checkpoint(o);
        }
        py::dict out;
        py::dict reports;
        for (const auto& l : r.linears) reports[py::str(l.name)] = report_dict(l.report);
        out["linears"] = reports;
        out["modalities"] = r.plan.modalities;
        out["shards_written"] = r.shards_written;
        out["shards_kept"] = r.shards_kept;
        out["part_file"] = r.part_file;
        return out;
      },
      py::arg("model"), py::arg("output"), py::arg("recipe"), py::arg("statistics"),
      py::arg("tokens"), py::arg("inputs"), py::arg("existing"), py::arg("shard_bytes"),
      py::arg("layers"), py::arg("only"), py::arg("join"), py::arg("threads"), py::arg("progress"),
      py::arg("settings"));

  py::class_<quantized_checkpoint, std::shared_ptr<quantized_checkpoint>>(
      m, "QuantizedCheckpoint", "A checkpoint written by quantize_checkpoint(), read in place.")
      .def(py::init([](const std::string& dir) {
             py::gil_scoped_release unlocked;
             return std::make_shared<quantized_checkpoint>(dir);
           }),
           py::arg("directory"))
      .def_property_readonly("modalities", &quantized_checkpoint::modalities)
      .def_property_readonly("linears", &quantized_checkpoint::linears)
      .def_property_readonly(
          "recipe", [](const quantized_checkpoint& c) { return to_json(c.recipe()).dump(); })
      .def("__contains__", &quantized_checkpoint::has_linear)
      .def(
          "linear",
          [](const quantized_checkpoint& c, const std::string& name) {
            quantized_linear_params p;
            {
              py::gil_scoped_release unlocked;
              p = c.params(name);
            }
            return make_linear(std::move(p));
          },
          py::arg("name"), "The deployable layer of a quantized linear, by module name.");
}

}  // namespace masquant::python
