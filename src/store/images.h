// Image metadata records (name -> manifest target, config, chain id) in the metadata database.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace berth::store {

class Database;

struct ImageRecord {
  std::string name;  // normalised ref: "docker.io/library/busybox:latest" or "...@sha256:..."
  std::string target_digest, target_media_type, config_digest, chain_id;
  int64_t size = 0;
  std::map<std::string, std::string> labels;
  int64_t created_unix = 0;
};

class ImageStore {
 public:
  explicit ImageStore(std::shared_ptr<Database>);  // applies the "images" migrations
  void Put(const ImageRecord&);                    // insert or replace by name
  void PutAll(const std::vector<ImageRecord>&);    // the same for several, in one transaction
  std::optional<ImageRecord> Get(const std::string& name);
  void Delete(const std::string& name);  // missing -> Error(kNotFound)
  std::vector<ImageRecord> List();       // sorted by name
  std::vector<ImageRecord> ByConfig(const std::string& config_digest);

 private:
  std::shared_ptr<Database> db_;
};

}  // namespace berth::store
