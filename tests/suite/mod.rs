mod tools_fs;
